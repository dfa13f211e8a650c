// One load-generator process of bench/fleet-sales.ts: kiosks --from..--to of the kiosks file, each
// a real WebSocket to its relay instance speaking the agent's side of the protocol
// (src/agent/relay-link.ts), selling once every --interval-ms at its own phase. One sale:
//
//   order.ready -> order.accepted (acked)            the relay has the order pending
//   POST /_sandbox/scan                              the customer's app polls the POS url
//   POST /_sandbox/pay (no notification)             the payment exists at the emulator
//   POST <random instance>/mp/notifications   t0     Mercado Pago's webhook, signed
//   order.paid on the kiosk's socket          t1     the "motor pulse" of a simulated kiosk
//   ack, vend.result dispensed -> ack                the sale is closed at the relay
//
// t0 and t1 are taken in this process (one monotonic clock); t0 just before the notification's
// request is written. The sandbox is told not to notify, so the only notification is the timed
// one. Waits on stdin for a "go" line (so every process starts together), sells for
// --warmup-seconds (not measured) then --seconds (measured: sales whose notification left in that
// window), lets the sales in flight finish, prints one JSON summary line and exits when stdin
// closes. Before "go" it prints {"connected":N} once every kiosk is welcomed.

import http from 'node:http';
import { appendFileSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { webhookSignature } from '../../src/sandbox/notify.js';

const { values } = parseArgs({
  options: {
    kiosks: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    ws: { type: 'string' }, // comma-separated kiosk WebSocket urls, by instance index
    notify: { type: 'string' }, // comma-separated relay base urls that receive notifications
    sandbox: { type: 'string' },
    secret: { type: 'string' },
    'interval-ms': { type: 'string', default: '1000' },
    'warmup-seconds': { type: 'string', default: '5' },
    seconds: { type: 'string', default: '60' },
    'step-timeout-ms': { type: 'string', default: '15000' },
  },
});
if (!values.kiosks || values.from === undefined || values.to === undefined || !values.ws || !values.notify || !values.sandbox || !values.secret) {
  throw new Error('sales-swarm needs --kiosks FILE --from N --to M --ws URLS --notify URLS --sandbox URL --secret S');
}
const wsUrls = values.ws.split(',');
const notifyUrls = values.notify.split(',');
const sandboxUrl = values.sandbox;
const secret = values.secret;
const intervalMs = Number(values['interval-ms']);
const warmupMs = Number(values['warmup-seconds']) * 1000;
const windowMs = Number(values.seconds) * 1000;
const stepTimeoutMs = Number(values['step-timeout-ms']);

const mine = readFileSync(values.kiosks, 'utf8')
  .trim()
  .split('\n')
  .slice(Number(values.from), Number(values.to))
  .map((l) => {
    const [id, token, instance] = l.split(' ');
    return { id: id!, token: token!, instance: Number(instance) };
  });

// ---- HTTP: one keep-alive pool per process, as a real client would have ---------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.setTimeout(stepTimeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function sandboxCall<T>(path: string, body: unknown): Promise<T> {
  const r = await request(sandboxUrl + path, JSON.stringify(body));
  if (r.status !== 200) throw new Failure(`sandbox ${path} ${r.status}`);
  return JSON.parse(r.text) as T;
}

class Failure extends Error {}

// ---- figures ------------------------------------------------------------------------------------

const stats = {
  connected: 0,
  sales: 0, // completed (vend.result acked), measured or not
  measured: [] as number[], // notification sent -> order.paid received, ms
  notifyAnswerMs: [] as number[], // notification sent -> its 200
  saleMs: [] as number[], // order.ready sent -> vend.result acked
  failures: {} as Record<string, number>,
  late: 0, // sales that started later than their slot (the previous one took longer than the interval)
};
const fail = (why: string) => (stats.failures[why] = (stats.failures[why] ?? 0) + 1);
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
// BENCH_FLEET_TRACE=FILE: one line per measured sale (order, merchant order, wall-clock ms when the
// notification left, ms to its 200, ms to order.paid), to lay beside the relays' logs
const trace: string[] | undefined = process.env.BENCH_FLEET_TRACE ? [] : undefined;

// ---- one simulated kiosk ------------------------------------------------------------------------

interface Waiter {
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}
interface Frame {
  type: string;
  id: string;
  ackId?: string;
  orderId?: string;
  posQr?: string;
  reason?: string;
  code?: string;
  message?: string;
  at?: number;
}

class SimKiosk {
  private ws!: WebSocket;
  private seq = 0;
  private readonly waiters = new Map<string, Waiter>();
  private posQr = '';
  private paidAt = new Map<string, number>();

  constructor(private readonly k: { id: string; token: string; instance: number }) {}

  connect(): Promise<void> {
    this.ws = new WebSocket(wsUrls[this.k.instance]!, { headers: { authorization: `Bearer ${this.k.token}` }, perMessageDeflate: false });
    this.ws.on('message', (data) => this.onFrame(JSON.parse(String(data)) as Frame));
    this.ws.on('error', (err) => fail(`socket: ${(err as NodeJS.ErrnoException).code ?? err.message.slice(0, 60)}`));
    this.ws.on('close', () => {
      for (const [, w] of this.waiters) w.reject(new Failure('socket closed'));
      this.waiters.clear();
    });
    const welcome = this.wait('welcome');
    this.ws.once('open', () => this.send({ type: 'hello', kioskId: this.k.id, agentVersion: 'bench', openOrders: [] }));
    return welcome.then((w) => {
      this.posQr = w.posQr!;
    });
  }

  private send(f: Record<string, unknown>): string {
    const id = `${this.k.id}-${++this.seq}`;
    this.ws.send(JSON.stringify({ v: 1, id, ...f }));
    return id;
  }

  /** Resolves with the frame `key` names; rejects after the step timeout. A rejection nobody awaits
   * (the sale already failed at another step) is not an unhandled one. */
  private wait(key: string): Promise<Frame> {
    const p = new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Failure(`timeout waiting for ${key.split(':')[0]}`));
      }, stepTimeoutMs);
      this.waiters.set(key, { resolve, reject, timer });
    });
    p.catch(() => undefined);
    return p;
  }

  private settle(key: string, f: Frame): void {
    const w = this.waiters.get(key);
    if (!w) return;
    this.waiters.delete(key);
    clearTimeout(w.timer);
    w.resolve(f);
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case 'order.paid':
        // the moment a kiosk would pulse the motor; taken before anything else is done with it
        this.paidAt.set(f.orderId!, performance.now());
        this.send({ type: 'ack', ackId: f.id });
        this.settle(`paid:${f.orderId}`, f);
        return;
      case 'welcome':
        this.settle('welcome', f);
        return;
      case 'order.accepted':
      case 'order.rejected':
        this.send({ type: 'ack', ackId: f.id });
        this.settle(`answer:${f.orderId}`, f);
        return;
      case 'order.expired':
      case 'order.refunded':
        this.send({ type: 'ack', ackId: f.id });
        fail(`relay sent ${f.type}`);
        return;
      case 'ack':
        this.settle(`ack:${f.ackId}`, f);
        return;
      case 'ping':
        this.send({ type: 'pong', at: f.at });
        return;
      case 'error':
        fail(`relay error frame: ${f.code ?? '?'}: ${(f.message ?? '').slice(0, 60)}`);
        return;
    }
  }

  /** Sells until `stopAt` (performance.now()), once per interval at this kiosk's own phase. */
  async sell(measureFrom: number, measureTo: number, stopAt: number): Promise<void> {
    let slot = performance.now() + Math.random() * intervalMs;
    while (slot < stopAt) {
      const wait = slot - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else if (wait < -50) stats.late++;
      const started = performance.now();
      try {
        await this.saleOnce(measureFrom, measureTo);
      } catch (err) {
        fail(err instanceof Failure ? err.message : `error: ${(err as Error).message.slice(0, 80)}`);
        if (this.ws.readyState !== WebSocket.OPEN) return;
      }
      slot = Math.max(slot + intervalMs, started);
    }
  }

  private async saleOnce(measureFrom: number, measureTo: number): Promise<void> {
    const orderId = `ord_${this.k.id}_${this.seq}_${Math.random().toString(36).slice(2, 8)}`;
    const began = performance.now();
    const answered = this.wait(`answer:${orderId}`);
    const readyId = this.send({ type: 'order.ready', orderId, slot: 1, sku: 'COLA', quantity: 1, amount: 150000, currency: 'ARS', deadline: Date.now() + 60_000 });
    const readyAcked = this.wait(`ack:${readyId}`);
    const answer = await answered;
    await readyAcked;
    if (answer.type !== 'order.accepted') throw new Failure(`order rejected: ${answer.reason ?? '?'}`);
    let paid: Promise<Frame> | undefined;
    try {
      const scan = await sandboxCall<{ status: string; checkoutId: string; merchantOrderId: number }>('/_sandbox/scan', { qr: this.posQr });
      if (scan.status !== 'ready') throw new Failure(`scan ${scan.status}`);
      const pay = await sandboxCall<{ status: string }>('/_sandbox/pay', { checkoutId: scan.checkoutId, notify: false });
      if (pay.status !== 'approved') throw new Failure(`payment ${pay.status}`);
      paid = this.wait(`paid:${orderId}`);
      const dataId = String(scan.merchantOrderId);
      const requestId = `${orderId}-n`;
      const ts = Math.floor(Date.now() / 1000);
      const url = `${notifyUrls[Math.floor(Math.random() * notifyUrls.length)]}/mp/notifications?data.id=${dataId}&type=topic_merchant_order_wh`;
      const body = JSON.stringify({ id: this.seq, live_mode: false, type: 'topic_merchant_order_wh', action: 'update', data: { id: dataId } });
      const t0 = performance.now();
      const wall0 = Date.now();
      const res = await request(url, body, { 'x-request-id': requestId, 'x-signature': `ts=${ts},v1=${webhookSignature(secret, dataId, requestId, ts)}` });
      const answeredAt = performance.now();
      if (res.status !== 200) throw new Failure(`notification answered ${res.status}`);
      await paid;
      const t1 = this.paidAt.get(orderId)!;
      this.paidAt.delete(orderId);
      const inWindow = t0 >= measureFrom && t0 < measureTo;
      if (inWindow) {
        trace?.push(`${orderId} ${dataId} ${wall0} ${(answeredAt - t0).toFixed(1)} ${(t1 - t0).toFixed(1)}`);
        stats.measured.push(t1 - t0);
        stats.notifyAnswerMs.push(answeredAt - t0);
      }
      const resultId = this.send({ type: 'vend.result', orderId, result: 'dispensed', pulses: 1 });
      await this.wait(`ack:${resultId}`);
      stats.sales++;
      if (inWindow) stats.saleMs.push(performance.now() - began);
    } catch (err) {
      if (paid === undefined && this.ws.readyState === WebSocket.OPEN) {
        // never paid: withdraw it, so the kiosk's next order is not refused as kiosk_busy
        this.send({ type: 'order.cancel', orderId, reason: 'timeout' });
      }
      throw err;
    }
  }
}

// ---- the run ------------------------------------------------------------------------------------

const kiosks = mine.map((k) => new SimKiosk(k));
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(100, kiosks.length) }, async () => {
    while (next < kiosks.length) {
      await kiosks[next++]!.connect();
      stats.connected++;
    }
  }),
);
console.log(JSON.stringify({ connected: stats.connected }));
const control = createInterface({ input: process.stdin });
let controlClosed = false;
control.once('close', () => (controlClosed = true));
await new Promise<void>((resolve) => control.once('line', () => resolve()));
const now = performance.now();
const measureFrom = now + warmupMs;
const measureTo = measureFrom + windowMs;
setTimeout(() => loopDelay.enable(), warmupMs).unref();
await Promise.all(kiosks.map((k) => k.sell(measureFrom, measureTo, measureTo)));
loopDelay.disable();
if (trace) appendFileSync(process.env.BENCH_FLEET_TRACE!, `${trace.join('\n')}\n`);
const round = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);
console.log(
  JSON.stringify({
    done: true,
    connected: stats.connected,
    sales: stats.sales,
    failures: stats.failures,
    late: stats.late,
    measured: round(stats.measured),
    notifyAnswerMs: round(stats.notifyAnswerMs),
    saleMs: round(stats.saleMs),
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: loopDelay.max / 1e6,
  }),
);
// alive until the parent closes stdin: it reads this process's CPU time at the window's end
if (controlClosed) process.exit(0);
control.once('close', () => process.exit(0));
