import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import WebSocket from 'ws';
import { parseAgentConfigText } from '../../../src/agent/config.js';
import { startAgent, type Agent } from '../../../src/agent/agent.js';
import { CONTROL_COMMANDS, ControlRequest } from '../../../src/agent/control.js';
import { startLocalStack, type LocalStack } from '../../../src/cli/local-stack.js';
import { NullDisplay } from '../../../src/devices/display.js';
import { SimDispenser } from '../../../src/devices/dispenser.js';
import { parseBoardCommand, parseBoardLine } from '../../../src/devices/mdb/qibixx.js';
import { decodeCommandLine, decodePanelLine, encodePanel } from '../../../src/devices/serial/panel-protocol.js';
import { EmvError, decodeEmv, parseMercadoPagoQr } from '../../../src/emv/index.js';
import { parseAgentFrame, parseRelayFrame } from '../../../src/protocol/codec.js';
import { parseRelayConfigText } from '../../../src/relay/config.js';
import { ConfigError } from '../../../src/runtime/config-file.js';
import { Prng } from '../prng.js';
import type { SuiteReport } from '../report.js';

// Fuzz suite (fast-check): hostile or broken input into every parser and every door of the
// system. For each target: no crash (only the target's own error type, with a message), no hang
// (each case bounded), and no state changed (the relay's orders, payments, refunds and the
// agent's journal are the same before and after, and a real sale still works afterwards).

export const FUZZ_TARGETS = ['panel', 'mdb', 'ws-codec', 'ws-live', 'pos-url', 'notifications', 'config', 'qr', 'control'] as const;
export type FuzzTarget = (typeof FUZZ_TARGETS)[number];

export interface FuzzOptions {
  /** cases per target */
  cases: number;
  /** fewer (or more) cases for some targets, e.g. the HTTP targets in the short run */
  casesFor?: Partial<Record<FuzzTarget, number>>;
  seed: number;
  targets?: readonly FuzzTarget[];
  log?: (line: string) => void;
}

/** a case slower than this is a hang */
const CASE_LIMIT_MS = 2000;
/**
 * A case over CASE_LIMIT_MS is run once more with this much time before it is called a hang: on a
 * machine shared by many busy processes an answer can take seconds that has nothing to do with the
 * input (the 100,000-case notifications run once failed that way, an input answered in 3 ms when
 * replayed). A real hang hangs again; a case only slowed by the machine is counted, not failed.
 */
const HANG_CONFIRM_MS = 20_000;
let slowCases = 0;

const mutate = (base: string) =>
  fc
    .array(fc.tuple(fc.nat(), fc.constantFrom('del', 'ins', 'dup', 'flip'), fc.string({ unit: 'binary', maxLength: 8 })), { maxLength: 6 })
    .map((edits) => {
      let s = base;
      for (const [at, op, text] of edits) {
        const i = s.length ? at % s.length : 0;
        if (op === 'del') s = s.slice(0, i) + s.slice(i + 1 + (at % 4));
        else if (op === 'ins') s = s.slice(0, i) + text + s.slice(i);
        else if (op === 'dup') s = s.slice(0, i) + s.slice(i, i + 1 + (at % 16)).repeat(1 + (at % 5)) + s.slice(i);
        else s = s.slice(0, i) + String.fromCharCode((s.charCodeAt(i) ^ (1 << (at % 7))) & 0xffff) + s.slice(i + 1);
      }
      return s;
    });

const anyText = (samples: string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...samples).chain(mutate) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 300 }) },
    { weight: 1, arbitrary: fc.constantFrom(...samples).map((s) => s.repeat(50)) },
  );

function timed<T>(fn: () => T): T {
  const t0 = performance.now();
  const r = fn();
  const ms = performance.now() - t0;
  if (ms > CASE_LIMIT_MS) {
    // again: a parser that is slow on this input is slow every time
    const t1 = performance.now();
    fn();
    const again = performance.now() - t1;
    if (again > CASE_LIMIT_MS) throw new Error(`case took ${ms.toFixed(0)} ms, then ${again.toFixed(0)} ms (a hang)`);
    slowCases++;
  }
  return r;
}

/** a sync parser must return a verdict or throw its own error type with a message */
function ownError(err: unknown, cls: new (...a: never[]) => Error): void {
  if (!(err instanceof cls)) throw new Error(`threw ${(err as Error)?.name ?? typeof err} instead of ${cls.name}: ${(err as Error)?.message}`);
  if (!err.message.trim()) throw new Error(`${cls.name} with an empty message`);
}

const QR_SAMPLE = '00020101021243650016COM.MERCADOLIBRE02013063638f1192a-5fd1-4180-a180-8bcae3556bc35204000053030325802AR5909Test Shop6004CABA63049BE1';
const RELAY_YAML = `listen: { host: 127.0.0.1, port: 8080 }
publicUrl: https://relay.example.com
store: { path: /var/lib/qrkiosk/relay.sqlite }
mercadopago: { accessToken: TEST-1, collectorId: 123456 }
catalog:
  - { sku: COLA, name: Cola, price: "1500.00", currency: ARS }
orders: { maxPaymentSeconds: 120 }
`;
const AGENT_YAML = `kioskId: kiosk-01
relay: { url: wss://relay.example.com/v1/kiosk, token: qk_0123456789abcdef }
journal: { path: /var/lib/qrkiosk/agent.sqlite }
slots:
  - { slot: 1, sku: COLA, stock: 10 }
hardware:
  buttons: { driver: none }
  display: { driver: none }
  dispenser: { driver: sim }
`;

interface Live {
  stack: LocalStack;
  agent: Agent;
  dir: string;
  socket: string;
  /** the relay's and the agent's money state, to compare before and after */
  snapshot(): Promise<string>;
}

async function startLive(): Promise<Live> {
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-fuzz-'));
  const silent = pino({ level: 'silent' });
  const stack = await startLocalStack({
    dir,
    accessToken: 'TEST-fuzz',
    collectorId: 424242,
    webhookSecret: 'fuzz-secret',
    catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
    orders: { contingencyAfterSeconds: 3600 },
    kiosk: { id: 'fuzz', posExternalId: 'FUZZ1', storeExternalId: 'FUZZSTORE' },
    pollIntervalMs: 20,
    sandboxLogger: silent,
    relayLogger: silent,
  });
  const socket = join(dir, 'agent.sock');
  const agent = await startAgent(
    {
      kioskId: 'fuzz',
      relay: { url: stack.relay.wsUrl, token: stack.token },
      journal: { path: join(dir, 'agent.sqlite') },
      control: { socket },
      slots: [{ slot: 1, sku: 'COLA', stock: 100 }],
      hardware: { buttons: { driver: 'none' }, display: { driver: 'none' }, dispenser: { driver: 'sim' } },
    },
    {
      logger: silent,
      display: new NullDisplay(),
      dispenser: new SimDispenser({ pulseMs: 2, dropWindowMs: 200, maxPulses: 1, fault: 'none', dropDelayMs: 1, slowDropMs: 100 }),
      timings: { resultScreenMs: 0 },
    },
  );
  for (let i = 0; i < 400 && !agent.status().relay.lastWelcomeAt; i++) await new Promise((r) => setTimeout(r, 25));
  const snapshot = async () => {
    const s = stack.relay.store;
    const orders = (await s.recentOrders({ limit: 1000 })).map((o) => `${o.id}:${o.state}:${o.paymentIds.join('+')}`);
    const a = agent.status();
    return JSON.stringify({ orders, state: a.state, order: a.order?.orderId ?? null, stock: a.stock });
  };
  return { stack, agent, dir, socket, snapshot };
}

class NoAnswer extends Error {}

/** one request line to the control socket; resolves with the answer line, rejects on a hang */
async function controlRaw(socket: string, line: string): Promise<string> {
  try {
    return await controlOnce(socket, line, CASE_LIMIT_MS);
  } catch (err) {
    if (!(err instanceof NoAnswer)) throw err;
    const answer = await controlOnce(socket, line, HANG_CONFIRM_MS);
    slowCases++;
    return answer;
  }
}

function controlOnce(socket: string, line: string, limitMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(socket);
    let buf = '';
    const t = setTimeout(() => {
      c.destroy();
      reject(new NoAnswer(`no answer in ${limitMs} ms to ${JSON.stringify(line.slice(0, 80))}`));
    }, limitMs);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        c.destroy();
        resolve(buf.slice(0, nl));
      }
    });
    c.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    c.on('close', () => {
      clearTimeout(t);
      if (!buf.includes('\n')) resolve(buf); // the server may end a too-long line with its answer
    });
    c.write(line.replace(/\n/g, ' ') + '\n');
  });
}

async function http(url: string, init: RequestInit): Promise<number> {
  const once = async (limitMs: number) => {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(limitMs) });
    await r.arrayBuffer();
    return r.status;
  };
  try {
    return await once(CASE_LIMIT_MS);
  } catch (err) {
    if ((err as Error).name !== 'TimeoutError') throw err;
    const status = await once(HANG_CONFIRM_MS).catch((e: Error) => {
      throw new Error(`no answer in ${CASE_LIMIT_MS} ms, then none in ${HANG_CONFIRM_MS} ms (a hang): ${e.message}`);
    });
    slowCases++;
    return status;
  }
}

export async function fuzzSuite(o: FuzzOptions): Promise<SuiteReport> {
  const started = Date.now();
  const root = new Prng(o.seed);
  const targets = o.targets ?? FUZZ_TARGETS;
  const violations: string[] = [];
  slowCases = 0;
  const perTarget: Record<string, { cases: number; ms: number }> = {};
  const faults: Record<string, number> = {};
  const needLive = targets.some((t) => ['ws-live', 'pos-url', 'notifications', 'control'].includes(t));
  const live = needLive ? await startLive() : undefined;
  const before = await live?.snapshot();
  try {
    for (const target of targets) {
      const seed = root.fork(`fuzz:${target}`).u32() | 0;
      const t0 = Date.now();
      const cases = o.casesFor?.[target] ?? o.cases;
      const params = { numRuns: cases, seed, endOnFailure: true } as const;
      try {
        switch (target) {
          case 'panel': {
            const samples = [
              encodePanel({ type: 'RES', id: 'ord_1', result: 'DROP', pulses: 1 }),
              encodePanel({ type: 'SEL', slot: 3 }),
              encodePanel({ type: 'HB', boot: 'b1', status: 'OK' }),
              encodePanel({ type: 'NAK', id: 'ord_1', reason: 'BUSY' }),
            ];
            fc.assert(
              fc.property(anyText(samples), (line) => {
                for (const decode of [decodePanelLine, decodeCommandLine]) {
                  const r = timed(() => decode(line));
                  if (!r.ok && !r.reason) throw new Error('refused with no reason');
                }
              }),
              params,
            );
            break;
          }
          case 'mdb':
            fc.assert(
              fc.property(anyText(['c,STATUS,IDLE', 'c,VEND,1.50,3', 'c,ERR,"-1"', 'C,1', 'C,VEND,1.50', 'd,STATUS,RESULT,1']), (line) => {
                const a = timed(() => parseBoardLine(line));
                const b = timed(() => parseBoardCommand(line));
                if (!a?.kind || !b?.kind) throw new Error('no verdict');
              }),
              params,
            );
            break;
          case 'ws-codec': {
            const samples = [
              '{"v":1,"id":"m1","type":"order.ready","orderId":"ord_1","slot":1,"sku":"COLA","amount":150000,"currency":"ARS","deadline":1}',
              '{"v":1,"id":"m2","type":"vend.result","orderId":"ord_1","result":"dispensed","pulses":1}',
              '{"v":1,"id":"m3","type":"order.paid","orderId":"ord_1","paymentId":"1","amount":150000,"currency":"ARS"}',
              '{"v":1,"id":"m4","type":"ack","ackId":"m3"}',
            ];
            fc.assert(
              fc.property(fc.oneof(anyText(samples), fc.json().map(String)), (raw) => {
                for (const parse of [parseAgentFrame, parseRelayFrame]) {
                  const r = timed(() => parse(raw));
                  if (!r.ok && !r.message) throw new Error('refused with no message');
                }
              }),
              params,
            );
            break;
          }
          case 'ws-live': {
            // A connected kiosk that sends garbage: the relay answers with error frames or closes,
            // and changes nothing. Its own kiosk (not the agent's): with the agent's token the
            // agent's reconnect replaced the fuzzer's link within a second and every later case
            // sent nothing. When the relay closes the link the fuzzer connects again, so every
            // case is a frame the relay received; frames and connections are counted.
            const wsKiosk = await live!.stack.relay.store.addKiosk({ id: 'fuzz-ws', posExternalId: 'FUZZWS' });
            let ws: WebSocket | undefined;
            let closed = true;
            let frames = 0;
            let connections = 0;
            let answers = 0;
            const connect = async () => {
              const sock = new WebSocket(live!.stack.relay.wsUrl, { headers: { authorization: `Bearer ${wsKiosk.token}` } });
              sock.on('error', () => undefined);
              sock.on('message', () => answers++);
              await new Promise((res, rej) => sock.once('open', res).once('error', rej));
              sock.on('close', () => (closed = true));
              closed = false;
              connections++;
              ws = sock;
            };
            const samples = ['{"v":1,"id":"x1","type":"order.cancel","orderId":"ord_nope"}', '{"v":1,"id":"x2","type":"vend.result","orderId":"ord_nope","result":"dispensed","pulses":1}', '{"v":1,"id":"x3","type":"ping","at":1}'];
            await fc.assert(
              fc.asyncProperty(anyText(samples), async (raw) => {
                // a well-formed order is a sale, not fuzz
                const valid = parseAgentFrame(raw);
                if (valid.ok && valid.msg.type === 'order.ready') return;
                if (closed) await connect();
                // written to the socket before the next case: no case is a no-op
                await new Promise<void>((res) => ws!.send(raw, () => res()));
                frames++;
              }),
              params,
            );
            // the relay has read them all: it answers a ping after them
            if (!closed) {
              const before = answers;
              ws!.send(JSON.stringify({ v: 1, id: 'last', type: 'ping', at: 1 }));
              for (let i = 0; i < 800 && answers === before && !closed; i++) await new Promise((r) => setTimeout(r, 25));
            }
            ws?.close();
            faults['ws-live frames sent'] = frames;
            faults['ws-live frames the relay answered'] = answers;
            faults['ws-live connections'] = connections;
            break;
          }
          case 'pos-url': {
            const base = live!.stack.relay.url;
            await fc.assert(
              fc.asyncProperty(
                fc.constantFrom('GET', 'POST'),
                anyText(['/mp/pos/FUZZ1?key=abc', '/mp/pos/FUZZ1', '/mp/pos/%00?key=', '/mp/pos/FUZZ1?key=' + 'a'.repeat(64)]),
                fc.dictionary(fc.constantFrom('content-type', 'x-request-id', 'user-agent', 'accept', 'x-signature'), fc.string({ maxLength: 80 }), { maxKeys: 3 }),
                fc.string({ unit: 'binary', maxLength: 400 }),
                async (method, p, headers, body) => {
                  // glued, never resolved: a path like //host/… must not leave loopback
                  const url = `${base}${p.startsWith('/') ? p : `/${p}`}`;
                  if (!loopbackUrl(url, base)) return;
                  const status = await http(url, { method, headers: cleanHeaders(headers), ...(method === 'POST' ? { body } : {}) });
                  if (status >= 500) throw new Error(`HTTP ${status} for ${method} ${url}`);
                },
              ),
              params,
            );
            break;
          }
          case 'notifications': {
            const base = live!.stack.relay.url;
            await fc.assert(
              fc.asyncProperty(
                anyText(['?topic=merchant_order&id=123', '?data.id=123&type=topic_merchant_order_wh', '?topic=payment&id=99', '?id=..']),
                fc.oneof(anyText(['{"action":"payment.updated","data":{"id":"123"},"type":"payment"}', '{"resource":"https://api.mercadopago.com/merchant_orders/1","topic":"merchant_order"}']), fc.json().map(String)),
                fc.dictionary(fc.constantFrom('content-type', 'x-request-id', 'x-signature', 'user-agent'), fc.string({ maxLength: 120 }), { maxKeys: 4 }),
                async (q, body, headers) => {
                  const url = `${base}/mp/notifications${q.startsWith('?') ? q : `?${q}`}`;
                  if (!loopbackUrl(url, base)) return;
                  const status = await http(url, { method: 'POST', headers: cleanHeaders(headers), body });
                  if (status >= 500) throw new Error(`HTTP ${status} for a notification ${url}`);
                },
              ),
              params,
            );
            await live!.stack.relay.whenIdle();
            break;
          }
          case 'config':
            fc.assert(
              fc.property(anyText([RELAY_YAML, AGENT_YAML]), (text) => {
                for (const parse of [(t: string) => parseRelayConfigText(t, 'fuzz.yaml', {}), (t: string) => parseAgentConfigText(t, 'fuzz.yaml')]) {
                  try {
                    timed(() => parse(text));
                  } catch (err) {
                    ownError(err, ConfigError);
                  }
                }
              }),
              params,
            );
            break;
          case 'qr':
            fc.assert(
              fc.property(anyText([QR_SAMPLE]), (payload) => {
                for (const parse of [parseMercadoPagoQr, decodeEmv]) {
                  try {
                    timed(() => parse(payload));
                  } catch (err) {
                    ownError(err, EmvError);
                  }
                }
              }),
              params,
            );
            break;
          case 'control': {
            const requests = fc.oneof(
              anyText(['{"cmd":"status"}', '{"cmd":"journal","args":{"limit":5}}', '{"cmd":"hardware"}', '{"id":1,"cmd":"select","args":{"slot":"x"}}']),
              fc.record({ cmd: fc.oneof(fc.constantFrom(...CONTROL_COMMANDS), fc.string()), args: fc.anything() }, { requiredKeys: [] }).map((r) => JSON.stringify(r) ?? '{}'),
            );
            await fc.assert(
              fc.asyncProperty(requests, async (line) => {
                // a well-formed request that moves product or money is not fuzz, it is a sale
                const valid = ControlRequest.safeParse(safeJson(line));
                if (valid.success && !['status', 'journal', 'hardware'].includes(valid.data.cmd)) return;
                if (!line.trim()) return; // blank lines are skipped by design, like a shell's
                const answer = await controlRaw(live!.socket, line);
                const parsed = safeJson(answer) as { ok?: boolean; error?: string } | undefined;
                if (!parsed || typeof parsed.ok !== 'boolean') throw new Error(`answer is not a control response: ${answer.slice(0, 200)}`);
                if (!parsed.ok && !parsed.error) throw new Error('refused with no error message');
              }),
              params,
            );
            break;
          }
        }
      } catch (err) {
        // the failure (what was wrong) first, then the counterexample cut short, so the report says why
        const e = err as Error & { cause?: unknown };
        const lines = e.message.split('\n').map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l));
        const got = lines.findIndex((l) => l.startsWith('Got ') || l.startsWith('Caused by'));
        const cause = e.cause instanceof Error ? `${e.cause.name}: ${e.cause.message}` : '';
        violations.push(`${target}: ${[cause, ...(got >= 0 ? lines.slice(got, got + 3) : []), ...lines.slice(0, 3)].filter(Boolean).join(' | ')}`);
      }
      perTarget[target] = { cases, ms: Date.now() - t0 };
      faults[`${target} cases`] = cases;
      o.log?.(`${target}: ${cases} cases in ${Date.now() - t0} ms`);
    }
    if (live) {
      await live.stack.relay.whenIdle();
      const after = await live.snapshot();
      if (after !== before) violations.push(`state changed by fuzzing: before ${before}, after ${after}`);
      // and the system still sells
      const sold = await sellOnce(live);
      if (sold !== 'dispensed') violations.push(`after fuzzing, a real sale ended ${sold}`);
    }
  } finally {
    if (live) {
      await live.agent.close();
      await live.stack.close();
      rmSync(live.dir, { recursive: true, force: true });
    }
  }
  return { suite: 'fuzz', seed: o.seed, model: 'unattended', cycles: o.cases, faults, violations, durationMs: Date.now() - started, extra: { perTarget, slowCasesConfirmedNotHangs: slowCases } };
}

/** the fuzzer only ever talks to our own relay on loopback */
function loopbackUrl(url: string, base: string): boolean {
  try {
    return new URL(url).host === new URL(base).host;
  } catch {
    return false;
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** fetch refuses header values with control characters or non-Latin-1: drop those, the rest goes as is */
function cleanHeaders(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([, v]) => /^[\x20-\x7e]*$/.test(v)));
}

async function sellOnce(live: Live): Promise<string> {
  const sel = live.agent.select(1);
  if (!sel.ok) return `refused: ${sel.reason}`;
  for (let i = 0; i < 200 && (await live.stack.relay.store.getOrder(sel.orderId))?.state !== 'pending'; i++) await new Promise((r) => setTimeout(r, 25));
  const scan = await live.stack.sandbox.scan({ qr: live.stack.posQr });
  if (scan.status !== 'ready') return `scan ${scan.status}`;
  await live.stack.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
  for (let i = 0; i < 400; i++) {
    const st = live.agent.status();
    if (st.state === 'idle' && (await live.stack.relay.store.getOrder(sel.orderId))?.state === 'vended') return 'dispensed';
    await new Promise((r) => setTimeout(r, 25));
  }
  return `stuck: relay ${(await live.stack.relay.store.getOrder(sel.orderId))?.state}`;
}
