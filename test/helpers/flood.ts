// A hostile client in its own process (so its work does not run on the relay's event loop), for
// the abuse tests: `node --import tsx test/helpers/flood.ts '<json options>'`. It connects from
// its own loopback address (127.0.0.2 by default) so the relay tells it apart from Mercado
// Pago's poll, prints `started` once the attack is under way, keeps attacking until SIGTERM, then
// prints one JSON line of what it saw and exits.
//
// Modes:
//   notifications  unsigned IPN notifications, every id new, some with 60 KB bodies
//   pos-wrong-key  the POS url with a wrong key
//   slow-bodies    POSTs whose body trickles in a byte at a time and never completes
//   connections    idle connections, reopened as soon as the relay closes them
//   ws-bad-token   kiosk WebSocket upgrades with tokens that do not exist

import http from 'node:http';
import net from 'node:net';

interface FloodOptions {
  mode: 'notifications' | 'pos-wrong-key' | 'slow-bodies' | 'connections' | 'ws-bad-token';
  port: number;
  concurrency: number;
  source?: string;
}

const o = JSON.parse(process.argv[2] ?? '{}') as FloodOptions;
const source = o.source ?? '127.0.0.2';
const stats = { requests: 0, statuses: {} as Record<string, number>, errors: 0, connections: 0, closedByRelay: 0 };
let stopping = false;
let started = false;
const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, localAddress: source });

function markStarted(): void {
  if (started) return;
  started = true;
  process.stdout.write('started\n');
}

function count(status: number | string): void {
  stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
  markStarted();
}

function request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: o.port, method, path, agent, headers: body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } : headers }, (res) => {
      res.resume();
      res.on('end', () => {
        count(res.statusCode ?? 0);
        resolve();
      });
    });
    req.on('error', () => {
      stats.errors++;
      count('error');
      resolve();
    });
    stats.requests++;
    req.end(body);
  });
}

let seq = 0;
async function loop(one: () => Promise<void>): Promise<void> {
  while (!stopping) await one();
}

function holdConnection(send: (s: net.Socket) => void): void {
  if (stopping) return;
  const s = net.connect({ host: '127.0.0.1', port: o.port, localAddress: source });
  s.on('connect', () => {
    stats.connections++;
    send(s);
  });
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', () => {
    stats.closedByRelay++;
    markStarted();
    setTimeout(() => holdConnection(send), 20);
  });
}

const big = JSON.stringify({ pad: 'x'.repeat(60 * 1024) });

switch (o.mode) {
  case 'notifications':
    for (let i = 0; i < o.concurrency; i++) {
      void loop(() => {
        const id = 1_000_000_000 + ++seq;
        return request('POST', `/mp/notifications?topic=merchant_order&id=${id}`, seq % 5 === 0 ? big : '');
      });
    }
    break;
  case 'pos-wrong-key':
    for (let i = 0; i < o.concurrency; i++) void loop(() => request('GET', `/mp/pos/POS1?key=guess${++seq}`));
    break;
  case 'ws-bad-token':
    for (let i = 0; i < o.concurrency; i++) {
      void loop(() => request('GET', '/v1/kiosk', undefined, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', authorization: `Bearer qk_guess${++seq}` }));
    }
    break;
  case 'slow-bodies':
    for (let i = 0; i < o.concurrency; i++) {
      holdConnection((s) => {
        s.write(`POST /mp/notifications?topic=merchant_order&id=${++seq} HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n`);
        const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write('x')), 200);
        markStarted();
      });
    }
    break;
  case 'connections':
    for (let i = 0; i < o.concurrency; i++) holdConnection(() => markStarted());
    break;
}

process.on('SIGTERM', () => {
  stopping = true;
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  process.exit(0);
});
