// One client process of bench/kiosk-connections.ts: holds kiosks --from..--to of the tokens file
// as real WebSockets from one loopback source address (--source, e.g. 127.0.0.3: each source
// address has its own ~28,000 ephemeral ports towards one server port), each speaking the agent's
// side of the protocol (src/agent/relay-link.ts): hello, then a JSON ping every --ping-seconds
// (each kiosk at its own phase), pong to the relay's JSON pings; `ws` answers WebSocket pings.
// Prints one JSON line per second: {connected, failed, closed, pending, pongs, relayPings, errors}.
// Every attempt settles within --connect-timeout seconds (welcomed, or failed "no welcome in N s"):
// a socket whose handshake or welcome was lost (a SYN or a request dropped by an overloaded
// server's full accept queue is retransmitted by TCP for minutes) must not hold its worker, or a
// run stalls with every worker waiting and no CPU used (the 3,346-of-5,000 hang of issue 12).
// A failed attempt is made again, up to --attempts in all, as an agent reconnects; `failed`
// counts the kiosks whose every attempt failed, `retried` the attempts made again, `errors` each
// failed attempt by reason.

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
    'connect-timeout': { type: 'string', default: '30' },
    attempts: { type: 'string', default: '2' },
  },
});
if (!values.url || !values.tokens || values.from === undefined || values.to === undefined) {
  throw new Error('kiosk-swarm needs --url WS_URL --tokens FILE --from N --to M');
}
const url = values.url;
const pingMs = Number(values['ping-seconds']) * 1000;
const connectTimeoutMs = Number(values['connect-timeout']) * 1000;
const attempts = Math.max(1, Number(values.attempts));
const all = readFileSync(values.tokens, 'utf8').trim().split('\n');
const mine = all.slice(Number(values.from), Number(values.to)).map((l) => {
  const [id, token] = l.split(' ');
  return { id: id!, token };
});

const stats = { connected: 0, failed: 0, retried: 0, closed: 0, pending: 0, pongs: 0, relayPings: 0, done: false, errors: {} as Record<string, number> };
const noteError = (e: string) => (stats.errors[e] = (stats.errors[e] ?? 0) + 1);
const open = new Set<WebSocket>();

/** One attempt: resolves true when welcomed, false when it failed (the reason is in stats.errors). */
function connect(k: { id: string; token: string | undefined }): Promise<boolean> {
  stats.pending++;
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      ...(k.token ? { headers: { authorization: `Bearer ${k.token}` } } : {}),
      localAddress: values.source,
      perMessageDeflate: false,
      handshakeTimeout: connectTimeoutMs,
    });
    let welcomed = false;
    // the whole attempt (TCP connect, upgrade, hello -> welcome) is bounded, not only the upgrade
    const timer = setTimeout(() => fail(`no welcome in ${values['connect-timeout']} s`), connectTimeoutMs);
    const fail = (why: string) => {
      if (welcomed) return;
      welcomed = true; // settle once
      clearTimeout(timer);
      stats.pending--;
      noteError(why);
      ws.terminate();
      resolve(false);
    };
    ws.once('open', () => ws.send(JSON.stringify({ v: 1, id: `hello-${k.id}`, type: 'hello', kioskId: k.id, agentVersion: 'bench', openOrders: [] })));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; at?: number };
      if (f.type === 'welcome' && !welcomed) {
        welcomed = true;
        clearTimeout(timer);
        stats.pending--;
        stats.connected++;
        open.add(ws);
        // the agent's liveness ping, each kiosk at its own phase
        setTimeout(() => {
          const t = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ v: 1, id: 'p', type: 'ping', at: Date.now() })), pingMs);
          ws.once('close', () => clearInterval(t));
        }, Math.random() * pingMs);
        resolve(true);
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
  while (next < mine.length) {
    const k = mine[next++]!;
    let ok = await connect(k);
    for (let i = 1; !ok && i < attempts; i++) {
      stats.retried++;
      ok = await connect(k);
    }
    if (!ok) stats.failed++;
  }
});
await Promise.all(workers);
stats.done = true;
console.log(JSON.stringify(stats));
setInterval(() => console.log(JSON.stringify(stats)), 1000);
process.on('SIGTERM', () => {
  for (const ws of open) ws.terminate();
  process.exit(0);
});
