import type { NotifyOptions, SandboxEndpoint } from '../../../src/sandbox/types.js';
import { runCycle, verdict, type PayPlan } from '../cycle.js';
import { Prng } from '../prng.js';
import { bump, latencyFigures, stoppedBy, type SuiteReport } from '../report.js';
import { World, type PaymentModel } from '../world.js';

// Mercado Pago faults suite: in every cycle the emulator misbehaves as the seed says: 5xx and 429
// (with Retry-After) on the calls the relay makes, answers slower than the client's timeout,
// notifications duplicated, reordered, delayed or missing, a card refused before one that works,
// a payment short of the price, two payments for one order, a payment after the kiosk gave up.
// Faults stay on while the sale settles for a while, then they are cleared and the sale must
// end right by itself.

export interface MpFaultOptions {
  cycles: number;
  seed: number;
  model?: PaymentModel;
  /** longest delay of a late notification (the issue's figure: minutes) */
  maxNotifyDelayMs?: number;
  /** chance that a cycle has a call answer slower than the client's 10 s timeout */
  timeoutChance?: number;
  harmMs?: number;
  log?: (line: string) => void;
  keepDir?: boolean;
  /** stop starting cycles after this many minutes and report what was reached (--minutes) */
  minutes?: number;
}

type ApiFaults = ReadonlyArray<readonly [SandboxEndpoint, number[]]>;
/** reads, searches and refunds of the models whose payment state is a merchant order */
const MERCHANT_ORDER_FAULTS: ApiFaults = [
  ['getMerchantOrder', [500, 502, 503, 504, 429]],
  ['searchMerchantOrders', [500, 503, 429]],
  ['getPayment', [500, 503, 429]],
  ['refundPayment', [500, 503, 429]],
];
/**
 * The calls each model makes, faults on which the seed picks from: the reads, searches and
 * refunds, plus the calls that make an order payable and withdraw it (none in the unattended
 * model and for an offline QR).
 */
export function apiFaultsFor(model: PaymentModel): { faults: ApiFaults; slow: SandboxEndpoint[] } {
  const [name, mode] = model.split('/');
  const s = [500, 503, 429];
  switch (name) {
    case 'attended':
      return {
        faults: [...MERCHANT_ORDER_FAULTS, ...(mode === 'mpmobile' ? ([['postMobileOrder', s], ['deleteMobileOrder', s]] as const) : ([['putPosOrder', s], ['deletePosOrder', s]] as const))],
        slow: ['getMerchantOrder', 'refundPayment', 'searchMerchantOrders', mode === 'mpmobile' ? 'postMobileOrder' : 'putPosOrder'],
      };
    case 'dynamic':
      return {
        faults: [...MERCHANT_ORDER_FAULTS, ...(mode === 'offline' ? [] : ([['createDynamicQr', s]] as const)), ...(mode === 'hybrid' ? ([['deletePosOrder', s]] as const) : [])],
        slow: ['getMerchantOrder', 'refundPayment', 'searchMerchantOrders', ...(mode === 'offline' ? [] : (['createDynamicQr'] as const))],
      };
    case 'orders':
      return {
        faults: [['getOrder', [500, 502, 503, 504, 429]], ['searchOrders', s], ['refundOrder', s], ['createOrder', s], ['cancelOrder', s]],
        slow: ['getOrder', 'refundOrder', 'searchOrders', 'createOrder', 'cancelOrder'],
      };
    default:
      return { faults: MERCHANT_ORDER_FAULTS, slow: ['getMerchantOrder', 'refundPayment', 'searchMerchantOrders'] };
  }
}

export async function mpFaultSuite(o: MpFaultOptions): Promise<SuiteReport> {
  const started = Date.now();
  const root = new Prng(o.seed);
  const log = o.log ?? (() => undefined);
  const maxDelay = o.maxNotifyDelayMs ?? 120_000;
  const w = await World.start({ prng: root.fork('world'), model: o.model ?? 'unattended', deadlineSeconds: 60, contingencyAfterSeconds: 2 });
  const api = apiFaultsFor(o.model ?? 'unattended');
  const faults: Record<string, number> = {};
  const violations: string[] = [];
  const latencies: number[] = [];
  const armed = new Map<number, string>();
  const keepUp = async () => {
    for (const part of ['relay', 'agent'] as const) {
      const p = part === 'relay' ? w.relayProc : w.agentProc;
      if (!p || (part === 'relay' ? w.relayAlive() : w.agentAlive())) continue;
      const exit = await p.exited;
      violations.push(`${part} exited under Mercado Pago faults (code ${exit.code}, signal ${exit.signal}): see ${w.dir}/${part}.log`);
      if (part === 'relay') await w.startRelay();
      else await w.startAgent();
    }
  };
  const notifyPlan = (prng: Prng): NotifyOptions | false => {
    const kind = prng.weighted([['normal', 3], ['duplicated', 2], ['delayed', 2], ['missing', 1]] as const);
    bump(faults, `notification ${kind}`);
    const form = prng.pick(['ipn', 'webhook', 'both'] as const);
    switch (kind) {
      case 'normal':
        return { form };
      case 'duplicated':
        return { form, copies: prng.int(2, 5), parallel: prng.chance(0.5) };
      case 'delayed':
        return { form, delayMs: prng.int(100, maxDelay) };
      case 'missing':
        return false;
    }
  };
  try {
    await w.startRelay();
    await w.startAgent();
    const stopAt = o.minutes ? started + o.minutes * 60_000 : Infinity;
    let done = 0;
    for (let cycle = 1; cycle <= o.cycles && Date.now() < stopAt; cycle++) {
      done = cycle;
      const prng = root.fork(`cycle${cycle}`);
      const kind = prng.weighted<PayPlan['kind']>([['approved', 5], ['rejected_then_approved', 2], ['partial', 1], ['double', 1], ['late', 1], ['walk_away', 1]]);
      bump(faults, `payment ${kind}`);
      const first = notifyPlan(prng);
      const twoPayments = kind === 'rejected_then_approved' || kind === 'double';
      const second = twoPayments ? notifyPlan(prng) : first;
      // reordered: the second payment's notification overtakes the first one's
      if (first !== false && second !== false && twoPayments && prng.chance(0.5)) {
        first.delayMs = (second.delayMs ?? 0) + prng.int(200, 2000);
        bump(faults, 'notifications reordered');
      }
      const plan: PayPlan = { kind, notify: [first, second] };
      // API faults for this cycle
      for (let i = prng.int(0, 3); i > 0; i--) {
        const [endpoint, statuses] = prng.pick(api.faults);
        const status = prng.pick(statuses);
        const times = prng.int(1, 3);
        const f = await w.sandbox.setFault({ endpoint, status, times, ...(status === 429 ? { retryAfter: String(prng.int(0, 2)) } : {}) });
        armed.set(f.id, `${endpoint} ${status}${status === 429 ? ' + Retry-After' : ''}`);
      }
      if (prng.chance(o.timeoutChance ?? 0.05)) {
        const endpoint = prng.pick(api.slow);
        const f = await w.sandbox.setFault({ endpoint, status: 504, delayMs: 10_500 });
        armed.set(f.id, `${endpoint} timeout`);
      }
      const result = await runCycle(w, prng, plan, { keepUp, trace: (l) => log(`  ${l}`), heal: async () => {
          // count the API faults that were hit (armed ones the sale never reached do not count)
          for (const f of await w.sandbox.faults()) if (f.hits) bump(faults, armed.get(f.id) ?? `fault ${f.id}`, f.hits);
          armed.clear();
          await w.sandbox.clearFaults();
        }, harmMs: o.harmMs ?? 3000 });
      log(`cycle ${cycle}: ${kind} ${JSON.stringify(plan.notify)}${result.stuck ? ` STUCK ${result.stuck}` : ''}`);
      if (result.payToDispenseMs !== undefined) latencies.push(result.payToDispenseMs);
      if (result.stuck) violations.push(`cycle ${cycle} (${kind}): ${result.stuck}`);
      const v = await verdict(w);
      for (const x of v.violations) if (!violations.some((s) => s.endsWith(x))) violations.push(`cycle ${cycle} (${kind} ${JSON.stringify(plan.notify)}): ${x}`);
    }
    const final = await verdict(w);
    return {
      suite: 'mp',
      seed: o.seed,
      model: o.model ?? 'unattended',
      cycles: done,
      faults,
      violations,
      payToDispenseMs: latencyFigures(latencies),
      durationMs: Date.now() - started,
      extra: { ...stoppedBy(done, o), counts: final.counts, maxNotifyDelayMs: maxDelay, ...(o.keepDir || violations.length ? { dir: w.dir } : {}) },
    };
  } finally {
    await w.close(o.keepDir || violations.length > 0);
  }
}
