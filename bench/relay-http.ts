// The relay's internet-facing figures, each beside its floor measured in the same run:
//   POS-url poll, "no order" answer   autocannon (own process) against the relay (own process)
//                                      with its kiosk connected, vs a bare node:http server
//                                      answering the same bytes
//   notification route throughput      IPN-form POSTs (each on disk before its 200: one fsync
//                                      shared by the waiting ones), vs a bare node:http server
//                                      doing one synced insert per request
// (Memory per connected kiosk is kiosk-connections.ts's: thousands of kiosks, where a few hundred
// drowned in the RSS's noise and once gave the floor a negative figure.)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { autocannon, loadWithCpu, startChild, type Load } from './lib/proc.js';

type CpuLoad = Load & { cpuUsPerReq: number };

export interface RelayHttpFigures {
  /** fastify: the same bytes from a one-route fastify app (how much of the gap is the framework) */
  poll: { route: CpuLoad; floor: CpuLoad; fastify: CpuLoad; generation: string }[];
  notifications: { route: CpuLoad; floor: CpuLoad };
}

const WAITING_V2 = '{"status":{"status_detail":"Waiting_for_order"}}';
const UNAVAILABLE_V1 = '{"error":{"type":"unavailable"}}';

/** Connects one agent-like WebSocket and completes the hello/welcome handshake. */
export function connectKiosk(wsUrl: string, kioskId: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${token}` } });
    ws.once('open', () => ws.send(JSON.stringify({ v: 1, id: `hello-${kioskId}`, type: 'hello', kioskId, agentVersion: 'bench', openOrders: [] })));
    ws.on('message', (d) => {
      if ((JSON.parse(d.toString()) as { type: string }).type === 'welcome') resolve(ws);
    });
    ws.once('error', reject);
  });
}

export async function pollFigure(generation: 'v1' | 'v2', seconds: number, connections: number) {
  const relay = await startChild('bench/servers/relay.ts', ['--generation', generation], { nodeArgs: process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [] });
  const same = generation === 'v2' ? [] : ['--status', '400', '--body', UNAVAILABLE_V1];
  const bare = await startChild('bench/servers/bare-http.ts', same);
  const fastify = await startChild('bench/servers/bare-fastify.ts', same);
  try {
    const ws = await connectKiosk(relay.info.wsUrl as string, 'k0', (relay.info.tokens as string[])[0]!);
    const path = relay.info.posPath as string;
    const url = `http://127.0.0.1:${relay.info.port}${path}`;
    const bareUrl = `http://127.0.0.1:${bare.info.port}${path}`;
    const fastifyUrl = `http://127.0.0.1:${fastify.info.port}${path}`;
    // Each server gets the same warm-up, then the same load, alternating so drift hits all.
    for (const u of [url, bareUrl, fastifyUrl]) await autocannon(u, { connections, seconds: 1 });
    const fastifyRounds: CpuLoad[] = [];
    const { route, floor } = await alternate(
      () => loadWithCpu(relay.proc.pid!, () => autocannon(url, { connections, seconds })),
      async () => {
        fastifyRounds.push(await loadWithCpu(fastify.proc.pid!, () => autocannon(fastifyUrl, { connections, seconds })));
        return loadWithCpu(bare.proc.pid!, () => autocannon(bareUrl, { connections, seconds }));
      },
    );
    ws.close();
    if (route.total === 0 || (generation === 'v2' && route.non2xx > 0)) throw new Error(`poll route answered ${route.non2xx} of ${route.total} requests with an error status`);
    const mid = [...fastifyRounds].sort((a, b) => a.reqPerSec - b.reqPerSec)[Math.floor(fastifyRounds.length / 2)]!;
    return { route, floor, fastify: { ...mid, cpuUsPerReq: Math.min(...fastifyRounds.map((x) => x.cpuUsPerReq)) }, generation };
  } finally {
    if (process.env.BENCH_PROFILE) {
      relay.proc.kill('SIGTERM');
      await new Promise((r) => relay.proc.once('exit', r));
    }
    await relay.stop();
    await bare.stop();
    await fastify.stop();
  }
}

async function notificationFigure(seconds: number, connections: number) {
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-notif-'));
  const relay = await startChild('bench/servers/relay.ts');
  const bare = await startChild('bench/servers/bare-http.ts', ['--status', '200', '--body', '{"ok":true}', '--sqlite', join(dir, 'floor.sqlite')]);
  const path = '/mp/notifications?topic=merchant_order&id=123456789';
  const opts = { connections, seconds, method: 'POST', body: '{"resource":"123456789","topic":"merchant_order"}', headers: { 'content-type': 'application/json' } };
  try {
    const { route, floor } = await alternate(
      () => loadWithCpu(relay.proc.pid!, () => autocannon(`http://127.0.0.1:${relay.info.port}${path}`, opts)),
      () => loadWithCpu(bare.proc.pid!, () => autocannon(`http://127.0.0.1:${bare.info.port}${path}`, opts)),
    );
    if (route.non2xx > 0) throw new Error(`notification route answered ${route.non2xx} of ${route.total} with an error status`);
    return { route, floor };
  } finally {
    await relay.stop();
    await bare.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rounds of the route's load and the floor's, interleaved; the median round of each. On a
 *  shared machine a neighbour's burst then lands on both sides instead of on one figure. */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
async function alternate(route: () => Promise<CpuLoad>, floor: () => Promise<CpuLoad>): Promise<{ route: CpuLoad; floor: CpuLoad }> {
  const r: CpuLoad[] = [];
  const f: CpuLoad[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    r.push(await route());
    f.push(await floor());
  }
  const mid = (xs: CpuLoad[]) => [...xs].sort((a, b) => a.reqPerSec - b.reqPerSec)[Math.floor(xs.length / 2)]!;
  const total = (xs: CpuLoad[]) => xs.reduce((s, x) => s + x.non2xx, 0);
  // CPU per request: the lowest round (the least disturbed by neighbours' cache and scheduler)
  const cpu = (xs: CpuLoad[]) => Math.min(...xs.map((x) => x.cpuUsPerReq));
  return { route: { ...mid(r), non2xx: total(r), cpuUsPerReq: cpu(r) }, floor: { ...mid(f), non2xx: total(f), cpuUsPerReq: cpu(f) } };
}

export async function benchRelayHttp(o: { seconds: number; connections: number }): Promise<RelayHttpFigures> {
  const poll = [await pollFigure('v2', o.seconds, o.connections), await pollFigure('v1', o.seconds, o.connections)];
  const notifications = await notificationFigure(o.seconds, o.connections);
  return { poll, notifications };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchRelayHttp({ seconds: Number(process.env.BENCH_SECONDS ?? 3), connections: 50 });
  console.log(JSON.stringify(r, null, 1));
}
