// Splits bench/fleet-sales.ts' figure (notification sent -> order.paid at the kiosk) into stages,
// from a kept run: the load generators' trace (BENCH_FLEET_TRACE: order, merchant order, wall ms
// when the notification left, ms to its 200, ms to order.paid) laid beside the relays' logs
// (BENCH_FLEET_KEEP keeps A.log, B.log). The relays log at info with a ms timestamp when the
// notification is stored, when the order moves to paid and when it is released to the kiosk.
//
//   BENCH_FLEET_TRACE=/tmp/t.txt BENCH_FLEET_KEEP=1 npx tsx bench/fleet-sales.ts --setups pg2 ...
//   npx tsx bench/fleet-stages.ts /tmp/qrk-bench-fleet-sales-XXXX /tmp/t.txt

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile } from './lib/stats.js';

const [dir, traceFile] = process.argv.slice(2);
if (!dir || !traceFile) throw new Error('usage: fleet-stages.ts KEPT_RUN_DIR TRACE_FILE');

const stored = new Map<string, { at: number; instance: string }>();
const paid = new Map<string, number>();
const released = new Map<string, number>();
const instances = ['A', 'B'].filter((i) => existsSync(join(dir, `${i}.log`)));
for (const instance of instances) {
  const log = join(dir, `${instance}.log`);
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const j = JSON.parse(line) as { time: number; msg?: string; resourceId?: string; orderId?: string };
    const msg = j.msg ?? '';
    if (msg.startsWith('notification webhook') && j.resourceId) stored.set(j.resourceId, { at: j.time, instance });
    else if (msg.includes('-> paid') && j.orderId) paid.set(j.orderId, j.time);
    else if (msg.includes('releasing to kiosk') && j.orderId) released.set(j.orderId, j.time);
  }
}

const stages: Record<string, number[]> = {
  'whole: notification sent -> order.paid at the kiosk': [],
  'notification sent -> stored (then answered 200)': [],
  'stored -> paid committed (merchant order read, transaction)': [],
  'paid -> releasing logged': [],
  'released -> order.paid at the kiosk': [],
};
const byInstance = { same: [] as number[], other: [] as number[] };
for (const line of readFileSync(traceFile, 'utf8').trim().split('\n')) {
  const [orderId, moId, sentAt, , total] = line.split(' ');
  const s = stored.get(moId!);
  const p = paid.get(orderId!);
  if (!s || p === undefined) continue; // another run's sale
  const t0 = Number(sentAt);
  const whole = Number(total);
  const r = released.get(orderId!) ?? p;
  const v = Object.values(stages);
  v[0]!.push(whole);
  v[1]!.push(s.at - t0);
  v[2]!.push(p - s.at);
  v[3]!.push(r - p);
  v[4]!.push(t0 + whole - r);
  // kiosk k<i> is on instance i % instances (fleet-sales.ts)
  const kiosk = Number(/^ord_k(\d+)_/.exec(orderId!)?.[1]);
  (s.instance === instances[kiosk % instances.length] ? byInstance.same : byInstance.other).push(whole);
}

const fmt = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? `p50 ${percentile(s, 50).toFixed(1)}  p90 ${percentile(s, 90).toFixed(1)}  p99 ${percentile(s, 99).toFixed(1)} ms (${s.length})` : '-';
};
for (const [k, xs] of Object.entries(stages)) console.log(`${k.padEnd(62)} ${fmt(xs)}`);
console.log(`${'notification to the kiosk\'s own instance'.padEnd(62)} ${fmt(byInstance.same)}`);
console.log(`${'notification to the other instance'.padEnd(62)} ${fmt(byInstance.other)}`);
