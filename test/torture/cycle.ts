import type { NotifyOptions } from '../../src/sandbox/types.js';
import { checkInvariants, type Verdict } from './invariants.js';
import type { Prng } from './prng.js';
import type { World } from './world.js';

// One customer at the kiosk, driven step by step, tolerant of whatever the suite breaks in
// between: a process that died is restarted (crash suite) or reported (others), a scan that gets
// no order makes the customer walk away (the kiosk's order is cancelled), and the cycle ends only
// when both sides agree on a final state. The suite gets a call at every step to break things.

export type CycleStep = 'start' | 'selected' | 'pending' | 'scanned' | 'paid' | 'settling';

/** What the customer and Mercado Pago do with this order. */
export type PayKind =
  | 'approved' // pays in full
  | 'walk_away' // scans nothing, leaves: the kiosk cancels
  | 'rejected_then_approved' // the card is refused, the customer pays again with another
  | 'partial' // pays less than the price (the merchant order stays open), then leaves
  | 'double' // pays twice (two approved payments for one order)
  | 'late'; // the kiosk cancels, then the payment goes through anyway

export interface PayPlan {
  kind: PayKind;
  /**
   * how Mercado Pago notifies a payment; false = the notification never arrives. A list gives
   * one per payment of the cycle, in order (so the second's can overtake the first's).
   */
  notify: NotifyOptions | false | Array<NotifyOptions | false>;
}

export interface CycleHooks {
  /** the suite's chance to break something at this step */
  atStep?(step: CycleStep): Promise<void>;
  /** restart what died; called whenever the driver waits */
  keepUp(): Promise<void>;
  /** called when the cycle starts to settle: heal the network, clear Mercado Pago faults */
  heal?(): Promise<void> | void;
  trace?(line: string): void;
  /** how long to let the system settle with faults still on, before heal() */
  harmMs?: number;
}

export interface CycleResult {
  orderId?: string;
  plan: PayPlan;
  /** ms from the customer's payment to the kiosk journaling `dispensed` */
  payToDispenseMs?: number;
  /** the cycle could not settle in time: the reason */
  stuck?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(hooks: CycleHooks, timeoutMs: number, check: () => T | undefined | false | Promise<T | undefined | false>): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    await hooks.keepUp();
    const v = await Promise.resolve(check()).catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(25);
  }
}

const AGENT_FINAL = new Set(['dispensed', 'vend_failed', 'vend_unknown', 'cancelled', 'rejected', 'not_dispensed']);
const RELAY_FINAL = new Set(['vended', 'refunded', 'cancelled', 'expired', 'rejected']);

export async function runCycle(w: World, prng: Prng, plan: PayPlan, hooks: CycleHooks): Promise<CycleResult> {
  const res: CycleResult = { plan };
  const t0 = Date.now();
  const step = async (s: CycleStep) => {
    hooks.trace?.(`${s} +${Date.now() - t0} ms`);
    await hooks.atStep?.(s);
  };
  await step('start');

  const slot = prng.int(1, 2);
  const sel = await until(hooks, 90_000, async () => {
    // a kiosk restarted during a sale shows that sale's QR again: the customer goes on with it
    const resumed = await w.openOrder();
    if (resumed) return { ok: true, orderId: resumed };
    if (!(await w.agentOnline())) return undefined;
    const r = await w.select(slot);
    return r.ok ? r : undefined;
  });
  if (!sel?.orderId) {
    res.stuck = 'the kiosk never accepted a button press for 90 s';
    return res;
  }
  const orderId = sel.orderId;
  res.orderId = orderId;
  await step('selected');

  const agentState = () => w.agentOrders().find((o) => o.id === orderId)?.state;
  const pending = await until(hooks, 10_000, () => w.relayOrder(orderId)?.state === 'pending' || (agentState() !== undefined && agentState() !== 'awaiting_payment'));
  await step('pending');

  let paidAt: number | undefined;
  // the customer walks away: the kiosk's cancel (restarted first if it died meanwhile)
  const leave = async () => {
    await until(hooks, 30_000, async () => {
      const st = agentState();
      if (st !== 'awaiting_payment') return true;
      if (w.agentAlive()) await w.cancel();
      return false;
    });
  };
  let payments = 0;
  // false when Mercado Pago's app refused to take the money (the order was withdrawn meanwhile)
  const pay = async (o: { outcome?: 'approved' | 'rejected'; amountMinor?: number; checkoutId: string; race?: boolean }): Promise<boolean> => {
    const n = Array.isArray(plan.notify) ? plan.notify[Math.min(payments, plan.notify.length - 1)]! : plan.notify;
    payments++;
    const r = await w.pay({ ...o, notify: n === false ? false : { ...n } });
    if (r === 'refused') {
      hooks.trace?.(`payment refused by the app: the order was withdrawn`);
      return false;
    }
    if (o.outcome !== 'rejected') paidAt ??= Date.now();
    return true;
  };
  if (!pending || plan.kind === 'walk_away') {
    await leave();
  } else {
    const scan = await w.scan(orderId, { prng, wait: () => hooks.keepUp() });
    if (scan.status !== 'ready') {
      hooks.trace?.(`scan found nothing to pay (${scan.why}): the customer leaves`);
      await leave(); // nothing to pay: the customer leaves
    } else {
      await step('scanned');
      const price = scan.totalMinor;
      switch (plan.kind) {
        case 'approved':
          if (!(await pay({ checkoutId: scan.checkoutId }))) await leave();
          break;
        case 'rejected_then_approved':
          await pay({ checkoutId: scan.checkoutId, outcome: 'rejected' });
          if (!(await pay({ checkoutId: scan.checkoutId }))) await leave();
          break;
        case 'double':
          // two phones on one QR: the second payment crosses the first (the app would refuse it
          // once the order is paid, in the models where Mercado Pago withdraws a paid order)
          if (await pay({ checkoutId: scan.checkoutId })) await pay({ checkoutId: scan.checkoutId, race: true });
          else await leave();
          break;
        case 'partial':
          await pay({ checkoutId: scan.checkoutId, amountMinor: Math.max(1, price - prng.int(1, price - 1)) });
          paidAt = undefined; // nothing to dispense
          await sleep(prng.int(0, 500));
          await leave();
          break;
        case 'late':
          await leave();
          // the kiosk gave up and withdrew the order; the payment lands anyway
          await pay({ checkoutId: scan.checkoutId, race: true });
          paidAt = undefined;
          break;
      }
      await step('paid');
    }
  }

  // Settle: both sides final, nothing left to send or refund. Faults stay on for harmMs, then the
  // suite heals the world and the system must converge by itself.
  await step('settling');
  let healed = false;
  const settledAt = Date.now();
  const done = await until(hooks, (hooks.harmMs ?? 0) + 90_000, async () => {
    if (!healed && Date.now() - settledAt >= (hooks.harmMs ?? 0)) {
      healed = true;
      await hooks.heal?.();
    }
    const a = agentState();
    if (a === 'dispensed' && paidAt && res.payToDispenseMs === undefined) res.payToDispenseMs = Date.now() - paidAt;
    if (!a || !AGENT_FINAL.has(a)) return false;
    const r = w.relayOrder(orderId);
    if (!r || !RELAY_FINAL.has(r.state)) return false;
    if (w.agentOutbox() > 0) return false;
    const b = w.relayBacklog();
    if (b.outbox !== 0 || b.refunds !== 0 || b.notifications !== 0) return false;
    // every approved payment of this order is consumed or refunded (late notifications included)
    const v = await verdictFor(w, orderId);
    return v.violations.length === 0 || undefined;
  });
  if (!healed) await hooks.heal?.(); // settled before the faults were lifted: lift them now
  hooks.trace?.(`settled +${Date.now() - t0} ms`);
  if (!done) {
    const r = w.relayOrder(orderId);
    res.stuck = `order ${orderId} did not settle: kiosk ${agentState()}, relay ${r?.state}, backlog ${JSON.stringify(w.relayBacklog())}, kiosk outbox ${w.agentOutbox()}`;
  }
  return res;
}

/**
 * The invariants over the whole run so far, once the work in flight has drained: a notification
 * can land at any moment (a late one of an earlier sale, the webhook Mercado Pago sends after a
 * refund) and is processed milliseconds later. Read at an instant, such a row counted as "never
 * processed" (mp suite, Orders API, seed 20261229); the backlog must be empty at some moment within
 * `drainMs`, or it is a violation.
 */
export async function verdict(w: World, drainMs = 30_000): Promise<Verdict> {
  const end = Date.now() + drainMs;
  // The backlog judged is the one read when it drained (or the last one read when it never did):
  // read again after the ledger, a notification that landed in between counted as "never
  // processed" (network suite, orders/static, seed 20261417, cycle 744: no notification of that
  // run waited more than 12 s).
  let backlog: ReturnType<World['relayBacklog']>;
  let agentOutbox: number;
  for (;;) {
    backlog = w.relayBacklog();
    agentOutbox = w.agentOutbox();
    if ((backlog.outbox === 0 && backlog.refunds === 0 && backlog.notifications === 0 && agentOutbox === 0) || Date.now() > end) break;
    await sleep(50);
  }
  const ledger = await w.ledger();
  return checkInvariants({
    agentOrders: w.agentOrders(),
    pulses: w.pulses(),
    agentOutbox,
    relayOrders: w.relayOrders(),
    relayBacklog: backlog,
    payments: ledger.payments,
    refunds: ledger.refunds,
  });
}

async function verdictFor(w: World, orderId: string): Promise<Verdict> {
  const ledger = await w.ledger();
  const payments = ledger.payments.filter((p) => p.external_reference === orderId);
  const ids = new Set(payments.map((p) => String(p.id)));
  return checkInvariants({
    agentOrders: w.agentOrders().filter((o) => o.id === orderId),
    pulses: [],
    agentOutbox: 0,
    relayOrders: w.relayOrders().filter((o) => o.id === orderId),
    relayBacklog: { outbox: 0, refunds: 0, notifications: 0 },
    payments,
    refunds: ledger.refunds.filter((r) => ids.has(String(r.paymentId))),
  });
}

export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
