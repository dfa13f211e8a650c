// Floors measured in the same run as the figures they stand beside: what the machine itself
// needs for the steps a hot path cannot skip.
//   synced insert          one INSERT committed with journal_mode=WAL, synchronous=FULL (what
//                          openDatabase sets): one fsync of the WAL
//   HTTP GET round trip    node:http client -> bare node:http server on loopback, keep-alive
//   WebSocket hop          one text frame from a `ws` server to its client, one way, one clock

import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket, { WebSocketServer } from 'ws';
import { spread, type Spread } from './lib/stats.js';

export function syncedInserts(n: number): { each: Spread; perSecond: number } {
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-sql-'));
  try {
    const db = new Database(join(dir, 'floor.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)');
    const st = db.prepare('INSERT INTO t (a, b) VALUES (?, ?)');
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      st.run(`row ${i}`, i);
      samples.push(performance.now() - s);
    }
    const total = performance.now() - t0;
    db.close();
    return { each: spread(samples), perSecond: (n * 1000) / total };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function httpGetRoundTrip(n: number): Promise<Spread> {
  const body = Buffer.from('{"id":1,"status":"closed"}');
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/merchant_orders/1', agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  const samples: number[] = [];
  try {
    for (let i = 0; i < n + 5; i++) {
      const s = performance.now();
      await get();
      if (i >= 5) samples.push(performance.now() - s);
    }
  } finally {
    agent.destroy();
    await new Promise((r) => server.close(r));
  }
  return spread(samples);
}

export async function wsHop(n: number): Promise<Spread> {
  const wss = await new Promise<WebSocketServer>((resolve) => {
    const s: WebSocketServer = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const port = (wss.address() as { port: number }).port;
  const serverSide = new Promise<WebSocket>((r) => wss.once('connection', r));
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((r) => client.once('open', r));
  const server = await serverSide;
  const frame = JSON.stringify({ v: 1, id: 'x'.repeat(20), type: 'order.paid', orderId: 'ord_0123456789abcdef', paymentId: '123456789', amount: 150000, currency: 'ARS' });
  const samples: number[] = [];
  try {
    for (let i = 0; i < n + 5; i++) {
      const got = new Promise((r) => client.once('message', r));
      const s = performance.now();
      server.send(frame);
      await got;
      if (i >= 5) samples.push(performance.now() - s);
    }
  } finally {
    client.terminate();
    await new Promise((r) => wss.close(r));
  }
  return spread(samples);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log({ synced: syncedInserts(200), get: await httpGetRoundTrip(200), ws: await wsHop(200) });
}
