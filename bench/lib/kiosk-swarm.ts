// One client process of bench/kiosk-connections.ts: holds kiosks --from..--to of the tokens file
// as real WebSockets from one loopback source address (--source, e.g. 127.0.0.3: each source
// address has its own ~28,000 ephemeral ports towards one server port), each speaking the agent's
// side of the protocol (src/agent/relay-link.ts): hello, then a JSON ping every --ping-seconds
// (each kiosk at its own phase), pong to the relay's JSON pings; `ws` answers WebSocket pings.
// Prints one JSON line per second: {connected, failed, closed, pongs, relayPings, errors}.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    tokens: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    source: { type: 'string', default: '127.0.0.1' },
    'ping-seconds': { type: 'string', default: '15' },
    concurrency: { type: 'string', default: '200' },
  },
});
if (!values.url || !values.tokens || values.from === undefined || values.to === undefined) {
  throw new Error('kiosk-swarm needs --url WS_URL --tokens FILE --from N --to M');
}
const url = values.url;
const pingMs = Number(values['ping-seconds']) * 1000;
const all = readFileSync(values.tokens, 'utf8').trim().split('\n');
const mine = all.slice(Number(values.from), Number(values.to)).map((l) => {
  const [id, token] = l.split(' ');
  return { id: id!, token };
});

const stats = { connected: 0, failed: 0, closed: 0, pongs: 0, relayPings: 0, done: false, errors: {} as Record<string, number> };
const noteError = (e: string) => (stats.errors[e] = (stats.errors[e] ?? 0) + 1);
const open = new Set<WebSocket>();

function connect(k: { id: string; token: string | undefined }): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      ...(k.token ? { headers: { authorization: `Bearer ${k.token}` } } : {}),
      localAddress: values.source,
      perMessageDeflate: false,
    });
    let welcomed = false;
    const fail = (why: string) => {
      if (welcomed) return;
      welcomed = true; // settle once
      stats.failed++;
      noteError(why);
      ws.terminate();
      resolve();
    };
    ws.once('open', () => ws.send(JSON.stringify({ v: 1, id: `hello-${k.id}`, type: 'hello', kioskId: k.id, agentVersion: 'bench', openOrders: [] })));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; at?: number };
      if (f.type === 'welcome' && !welcomed) {
        welcomed = true;
        stats.connected++;
        open.add(ws);
        // the agent's liveness ping, each kiosk at its own phase
        setTimeout(() => {
          const t = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ v: 1, id: 'p', type: 'ping', at: Date.now() })), pingMs);
          ws.once('close', () => clearInterval(t));
        }, Math.random() * pingMs);
        resolve();
      } else if (f.type === 'pong') stats.pongs++;
      else if (f.type === 'ping') {
        stats.relayPings++;
        ws.send(JSON.stringify({ v: 1, id: 'q', type: 'pong', at: f.at }));
      }
    });
    ws.on('error', (err) => fail((err as NodeJS.ErrnoException).code ?? err.message.slice(0, 60)));
    ws.on('unexpected-response', (_req, res) => fail(`HTTP ${res.statusCode}`));
    ws.on('close', () => {
      if (open.delete(ws)) stats.closed++;
      else fail('closed before welcome');
    });
  });
}

const report = setInterval(() => console.log(JSON.stringify(stats)), 1000);
report.unref();
let next = 0;
const workers = Array.from({ length: Math.min(Number(values.concurrency), mine.length) }, async () => {
  while (next < mine.length) await connect(mine[next++]!);
});
await Promise.all(workers);
stats.done = true;
console.log(JSON.stringify(stats));
setInterval(() => console.log(JSON.stringify(stats)), 1000);
process.on('SIGTERM', () => {
  for (const ws of open) ws.terminate();
  process.exit(0);
});
