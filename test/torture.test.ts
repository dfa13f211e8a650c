import { describe, expect, it } from 'vitest';
import { checkInvariants, type Evidence } from './torture/invariants.js';
import { Prng } from './torture/prng.js';
import { formatReport } from './torture/report.js';
import { crashSuite, planCrash, planPayment } from './torture/suites/crash.js';
import { fuzzSuite } from './torture/suites/fuzz.js';
import { mpFaultSuite } from './torture/suites/mp-faults.js';
import { networkSuite } from './torture/suites/network.js';
import { soakSuite } from './torture/suites/soak.js';
import { PAYMENT_MODELS } from './torture/world.js';

// The short versions of the torture suites (`npm run torture` runs them at full size), with fixed
// seeds so they are the same every run, plus the checks that make the suites trustworthy: the
// seed replays the same faults, and each invariant does catch what it is about.

describe('seeded randomness', () => {
  it('the same seed gives the same numbers and the same fault plans; forks are independent of draw order', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    expect(Array.from({ length: 50 }, () => a.u32())).toEqual(Array.from({ length: 50 }, () => b.u32()));
    expect(new Prng(43).u32()).not.toBe(new Prng(42).u32());
    const plans = (seed: number) => Array.from({ length: 30 }, (_, i) => new Prng(seed).fork(`cycle${i + 1}`)).map((p) => [planCrash(p), planPayment(p)]);
    expect(plans(7)).toEqual(plans(7));
    expect(plans(7)).not.toEqual(plans(8));
    // a fork does not depend on what the parent drew before
    const c = new Prng(9);
    const early = c.fork('proxy').u32();
    c.u32();
    c.u32();
    expect(c.fork('proxy').u32()).toBe(early);
  });

  it('refuses a seed that cannot be replayed', () => {
    expect(() => new Prng(-1)).toThrow(/seed must be a non-negative whole number/);
    expect(() => new Prng(1.5)).toThrow(/seed/);
  });
});

describe('the invariant checker catches each kind of violation', () => {
  const ok = (): Evidence => ({
    agentOrders: [{ id: 'ord_1', slot: 1, sku: 'COLA', amount: 150000, state: 'dispensed', payment_id: '11', result: 'dispensed' }],
    pulses: [{ slot: 1, pulse: 1 }],
    agentOutbox: 0,
    relayOrders: [{ id: 'ord_1', state: 'vended', amount: 150000, payment_ids: '["11"]', vend_result: 'dispensed', needs_review: null }],
    relayBacklog: { outbox: 0, refunds: 0, notifications: 0 },
    payments: [{ id: 11, status: 'approved', external_reference: 'ord_1', transaction_amount: 1500, currency_id: 'ARS' }],
    refunds: [],
  });
  const refund = (paymentId: number, amountMinor = 150000) => ({ id: paymentId + 1000, api: 'payments' as const, externalReference: 'ord_1', paymentId, merchantOrderId: 1, amountMinor, amount: amountMinor / 100, currency: 'ARS' as const, idempotencyKey: `k${paymentId}`, dateCreated: '', replays: 0 });

  it('a clean sale has no violation', () => {
    expect(checkInvariants(ok()).violations).toEqual([]);
  });
  it('[1] a second pulse for one order, one payment behind two vends', () => {
    const e = ok();
    e.pulses.push({ slot: 1, pulse: 1 });
    expect(checkInvariants(e).violations.join()).toMatch(/\[1\] slot 1: the motor pulsed 2 times for 1 orders/);
    const f = ok();
    f.agentOrders.push({ ...f.agentOrders[0]!, id: 'ord_2' });
    f.relayOrders.push({ ...f.relayOrders[0]!, id: 'ord_2' });
    expect(checkInvariants(f).violations.join()).toMatch(/\[1\] payment 11 was dispensed for 2 orders/);
  });
  it('[2] a dispense with a payment short of the price, or with none', () => {
    const e = ok();
    e.payments[0]!.transaction_amount = 1000;
    expect(checkInvariants(e).violations.join()).toMatch(/\[2\] order ord_1 reached dispensed with 100000 of 150000 paid/);
    const f = ok();
    f.payments = [];
    expect(checkInvariants(f).violations.join()).toMatch(/\[2\] order ord_1 reached dispensed with 0 of 150000/);
  });
  it('[3] a payment refunded twice, dispensed and refunded, or neither', () => {
    const e = ok();
    e.refunds = [refund(11), refund(11)];
    const v = checkInvariants(e).violations.join();
    expect(v).toMatch(/\[3\] payment 11 \(order ord_1\) refunded 2 times/);
    expect(v).toMatch(/\[3\] payment 11 \(order ord_1\) was dispensed AND refunded/);
    const f = ok();
    f.agentOrders[0]!.state = 'vend_failed';
    f.relayOrders[0]!.state = 'refunded';
    expect(checkInvariants(f).violations.join()).toMatch(/\[3\] payment 11 .* was neither dispensed nor refunded/);
  });
  it('[4] an order the relay lost, states that disagree, work left in an outbox', () => {
    const e = ok();
    e.relayOrders = [];
    expect(checkInvariants(e).violations.join()).toMatch(/\[4\] order ord_1 \(dispensed on the kiosk\) is unknown to the relay/);
    const f = ok();
    f.relayOrders[0]!.state = 'refunded';
    f.agentOutbox = 2;
    const v = checkInvariants(f).violations.join();
    expect(v).toMatch(/\[4\] order ord_1 is dispensed on the kiosk but refunded at the relay/);
    expect(v).toMatch(/\[4\] 2 frames still in the kiosk's outbox/);
  });
});

// Each short run fails on any violation; its report (with the seed to replay) is the message.
const clean = (r: { violations: string[] } & Parameters<typeof formatReport>[0]) => expect(r.violations, formatReport(r)).toEqual([]);

describe('torture suites, short versions', () => {
  it('crash: agent and relay SIGKILLed at seeded points of a sale, restarted, nothing lost', async () => {
    const r = await crashSuite({ cycles: 2, seed: 7 });
    clean(r);
    expect(Object.values(r.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 180_000);

  it('network: drops, delays, half-open links and resets on all three links', async () => {
    const r = await networkSuite({ cycles: 2, seed: 11, faultRate: 0.15, maxDelayMs: 400, harmMs: 500 });
    clean(r);
    // longer than the suite's own bounds (a cycle may take 90 s to settle before it is reported
    // stuck): at 180 s the test was cut off twice on a loaded machine before the suite could say why
  }, 420_000);

  it('Mercado Pago: 5xx, 429, late/duplicated/missing/reordered notifications, refused and partial payments', async () => {
    const r = await mpFaultSuite({ cycles: 3, seed: 3, maxNotifyDelayMs: 1500, timeoutChance: 0, harmMs: 500 });
    clean(r);
  }, 180_000);

  it('fuzz: every parser and door, no crash, no hang, a clear error, no state changed', async () => {
    const r = await fuzzSuite({ cases: 200, casesFor: { 'pos-url': 100, notifications: 100 }, seed: 5 });
    clean(r);
  }, 180_000);

  it('soak: several kiosks selling through one relay process', async () => {
    const r = await soakSuite({ vends: 12, kiosks: 2, seed: 1 });
    clean(r);
    expect(r.extra?.dbBytesPerVend).toBeGreaterThan(0);
  }, 180_000);
});

// Every payment model through the same harness (the long runs: npm run torture -- --model all):
// the provisioning, the scan and the calls Mercado Pago can fail differ per model, the
// invariants do not. One crash cycle, one Mercado Pago fault cycle and one network fault cycle
// each (the network one is what the scan and the offer calls of each model go through).
describe.each(PAYMENT_MODELS.filter((m) => m !== 'unattended'))('torture suites, short versions, model %s', (model) => {
  it('a sale with a seeded SIGKILL, then one with seeded Mercado Pago faults: nothing lost, nothing twice', async () => {
    clean(await crashSuite({ cycles: 1, seed: 7, model }));
    clean(await mpFaultSuite({ cycles: 1, seed: 3, model, maxNotifyDelayMs: 1500, timeoutChance: 0, harmMs: 500 }));
  }, 180_000);

  it('a sale with drops, delays, half-open links and resets on all three links', async () => {
    const r = await networkSuite({ cycles: 1, seed: 11, model, faultRate: 0.15, maxDelayMs: 400, harmMs: 500 });
    clean(r);
    expect(Object.values(r.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 420_000);
});

describe('cases the torture suites found, kept', () => {
  it('config with a YAML alias that has no anchor: a ConfigError, not a bare ReferenceError (fuzz, config)', async () => {
    const { parseAgentConfigText } = await import('../src/agent/config.js');
    const { parseRelayConfigText } = await import('../src/relay/config.js');
    const { ConfigError } = await import('../src/runtime/config-file.js');
    for (const parse of [(t: string) => parseAgentConfigText(t, 'x.yaml'), (t: string) => parseRelayConfigText(t, 'x.yaml', {})]) {
      expect(() => parse("*E;\\l@p'c")).toThrow(ConfigError);
      expect(() => parse('a: *nope')).toThrow(/x\.yaml: YAML error: .*alias.* write the value out/);
    }
  });
});
