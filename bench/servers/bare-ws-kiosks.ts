// The floor for bench/kiosk-connections.ts: a bare `ws` server on node:http holding the same
// kiosk sockets with the same heartbeat work the protocol asks of any server (answer a hello
// with a welcome-sized frame, a JSON ping with a pong; every --ping-seconds send each kiosk a
// JSON ping and a WebSocket ping and drop the ones silent for two intervals), and nothing else:
// no token check, no store, no framework. Prints {"port":N} when listening.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';

const { values } = parseArgs({ options: { 'ping-seconds': { type: 'string', default: '20' } } });
const intervalMs = Number(values['ping-seconds']) * 1000;
const WELCOME = JSON.stringify({ v: 1, id: 'm_00000000-0000-0000-0000-000000000000', type: 'welcome', kioskId: 'k0', serverTime: 0, paymentModel: 'unattended', posQr: '0'.repeat(120), qrOnAccept: false, catalog: [{ sku: 'COLA', name: 'Cola', price: 150000, currency: 'ARS' }], maxPaymentSeconds: 120 });

const server = createServer();
server.maxConnections = 1_000_000;
const wss = new WebSocketServer({ server, path: '/v1/kiosk', maxPayload: 64 * 1024 });
const seen = new Map<WebSocket, number>();
wss.on('connection', (ws) => {
  seen.set(ws, Date.now());
  ws.on('message', (data) => {
    seen.set(ws, Date.now());
    const f = JSON.parse(String(data)) as { type: string; at?: number };
    if (f.type === 'hello') ws.send(WELCOME);
    else if (f.type === 'ping') ws.send(JSON.stringify({ v: 1, id: 'm_x', type: 'pong', at: f.at }));
  });
  ws.on('pong', () => seen.set(ws, Date.now()));
  ws.on('close', () => seen.delete(ws));
  ws.on('error', () => undefined);
});
setInterval(() => {
  const t = Date.now();
  for (const [ws, last] of seen) {
    if (t - last > 2 * intervalMs) {
      ws.terminate();
      continue;
    }
    ws.send(JSON.stringify({ v: 1, id: 'm_x', type: 'ping', at: t }));
    ws.ping();
  }
}, intervalMs).unref();
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
