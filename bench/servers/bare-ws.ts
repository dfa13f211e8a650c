// The floor for memory per connected kiosk: a bare `ws` server (on node:http) that only holds
// its sockets. Prints {"port":N} when listening.

import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const server = createServer();
const wss = new WebSocketServer({ server, path: '/v1/kiosk' });
const held = new Set<unknown>();
wss.on('connection', (ws) => {
  held.add(ws);
  ws.on('message', () => undefined);
  ws.on('close', () => held.delete(ws));
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));

// the memory figure asks for a full collection before it reads RSS (started with --expose-gc)
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
