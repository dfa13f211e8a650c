import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent, type AgentDeps } from '../src/agent/agent.js';
import type { AgentConfigInput } from '../src/agent/config.js';
import { SimButtons } from '../src/devices/buttons.js';
import { NullDisplay, type Screen } from '../src/devices/display.js';
import { SimDispenser, type Dispenser, type SimFault, type VendOutcome } from '../src/devices/dispenser.js';
import { formatMoney } from '../src/core/money.js';
import { buildMercadoPagoQr } from '../src/emv/index.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, POS_QR, agentConfig, captureLogger, nextEvent, tempDir } from './agent-helpers.js';

// The vend flow end to end in one process: a real agent (real SQLite file, real WebSocket client)
// against a relay played by the test.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function simDispenser(fault: SimFault = 'none'): SimDispenser {
  return new SimDispenser({ pulseMs: 20, dropWindowMs: 120, maxPulses: 2, fault, dropDelayMs: 10, slowDropMs: 500 });
}

interface Setup {
  relay: FakeRelay;
  agent: Agent;
  dir: string;
  dispenser: SimDispenser;
  display: NullDisplay;
  buttons: SimButtons;
  config: AgentConfigInput;
  restart: (deps?: Partial<AgentDeps>) => Promise<Agent>;
}

async function setup(
  opts: { relay?: Parameters<typeof FakeRelay.start>[0]; config?: Record<string, unknown>; fault?: SimFault; deps?: Partial<AgentDeps>; waitOnline?: boolean } = {},
): Promise<Setup> {
  const relay = await FakeRelay.start(opts.relay);
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-flow-');
  cleanups.push(cleanup);
  const config = agentConfig(dir, relay.url, opts.config);
  const dispenser = simDispenser(opts.fault);
  const display = new NullDisplay();
  const buttons = new SimButtons();
  const start = async (deps: Partial<AgentDeps> = {}) => {
    const a = await startAgent(config, {
      logger: silentLogger(),
      dispenser,
      display,
      buttons,
      control: false,
      timings: { resultScreenMs: 60, offlineGraceMs: 60, tickMs: 1000 },
      ...opts.deps,
      ...deps,
    });
    cleanups.push(() => a.close());
    return a;
  };
  const agent = await start();
  if (opts.waitOnline !== false) await online(agent);
  return { relay, agent, dir, dispenser, display, buttons, config, restart: start };
}

async function online(agent: Agent): Promise<void> {
  if (agent.status().relay.online) return;
  await nextEvent<string>(agent as never, 'link', (s) => s === 'online');
}

function selectOk(agent: Agent, slot = 1) {
  const r = agent.select(slot);
  if (!r.ok) throw new Error(`select refused: ${r.reason} ${r.message}`);
  return r;
}

function paid(relay: FakeRelay, orderId: string, id?: string, amount = 150000) {
  return relay.send({ type: 'order.paid', orderId, paymentId: 'pay_1001', amount, currency: 'ARS' }, id);
}

function vendState(agent: Agent, orderId: string) {
  return agent.journal(50).find((e) => e.id === orderId);
}

describe('agent vend flow', () => {
  it('select sends order.ready with the catalog price and shows the pay screen', async () => {
    const { relay, agent, display } = await setup();
    const before = Date.now();
    const r = selectOk(agent);
    expect(r.amount).toBe(150000);
    expect(r.amountText).toBe(formatMoney(150000, 'ARS'));
    const ready = await relay.waitType('order.ready', (m) => m.orderId === r.orderId);
    expect(ready.msg).toMatchObject({ slot: 1, sku: 'COLA', quantity: 1, amount: 150000, currency: 'ARS' });
    expect(ready.msg.deadline as number).toBeGreaterThanOrEqual(before + 90_000);
    expect(ready.msg.deadline as number).toBeLessThanOrEqual(Date.now() + 90_000);
    expect(display.last()).toMatchObject({ screen: 'pay', orderId: r.orderId, qr: POS_QR, product: 'Cola 350ml', amountText: r.amountText });
    expect(display.last()?.secondsLeft).toBeGreaterThan(85);
    // the relay acked it: nothing left in the outbox
    await relay.waitType('order.ready');
    expect(agent.status()).toMatchObject({ state: 'awaiting_payment', order: { orderId: r.orderId, slot: 1 } });
  });

  it('refuses selections with a reason: unknown slot, out of stock, no price, busy', async () => {
    const { agent, display } = await setup();
    expect(agent.select(9)).toMatchObject({ ok: false, reason: 'unknown_slot' });
    expect(agent.select(2)).toMatchObject({ ok: false, reason: 'out_of_stock' });
    expect(display.last()).toMatchObject({ screen: 'idle', message: 'Producto agotado' });
    expect(agent.select(3)).toMatchObject({ ok: false, reason: 'price_unknown' });
    selectOk(agent, 1);
    expect(agent.select(1)).toMatchObject({ ok: false, reason: 'busy' });
    expect(display.last()?.screen).toBe('pay');
  });

  it('is out of service until the relay has welcomed it', async () => {
    const { agent, relay, display } = await setup({ relay: { autoWelcome: false }, waitOnline: false });
    await relay.waitHello(1);
    expect(agent.select(1)).toMatchObject({ ok: false, reason: 'out_of_service' });
    if (display.last()?.screen !== 'out_of_service') {
      await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'out_of_service');
    }
    relay.sendWelcome();
    await online(agent);
    expect(display.last()?.screen).toBe('idle');
    expect(display.last()?.products?.[0]).toMatchObject({ slot: 1, name: 'Cola 350ml', available: true });
    selectOk(agent);
  });

  it('paid -> dispensing is committed before the pulse -> dispensed -> vend.result', async () => {
    const relay0 = await setup();
    const { relay, agent, dir, display } = relay0;
    // A dispenser that, at the moment the motor would move, reads the journal through ANOTHER
    // connection: only committed data is visible there.
    const seen: Array<{ state: string; steps: string[] }> = [];
    const inner = simDispenser();
    const probe: Dispenser = {
      vend: (slot: number): Promise<VendOutcome> => {
        const db = new Database(`${dir}/agent.sqlite`, { readonly: true });
        const o = db.prepare(`SELECT id, state FROM orders ORDER BY created_at DESC LIMIT 1`).get() as { id: string; state: string };
        const steps = (db.prepare(`SELECT state FROM steps WHERE order_id = ? ORDER BY seq`).all(o.id) as Array<{ state: string }>).map((s) => s.state);
        db.close();
        seen.push({ state: o.state, steps });
        return inner.vend(slot);
      },
      safe: () => inner.safe(),
      close: () => inner.close(),
    };
    await agent.close();
    const a2 = await relay0.restart({ dispenser: probe });
    await online(a2);
    const r = selectOk(a2);
    const states: string[] = [];
    a2.on('state', (c) => states.push(c.to));
    const p = paid(relay, r.orderId);
    const result = await relay.waitType('vend.result', (m) => m.orderId === r.orderId);
    expect(result.msg).toMatchObject({ result: 'dispensed', pulses: 1 });
    expect(seen).toEqual([{ state: 'dispensing', steps: ['awaiting_payment', 'paid', 'dispensing'] }]);
    await relay.waitType('ack', (m) => m.ackId === p.id);
    expect(states).toEqual(['paid', 'dispensing', 'dispensed']);
    const entry = vendState(a2, r.orderId)!;
    expect(entry).toMatchObject({ state: 'dispensed', result: 'dispensed', pulses: 1, paymentId: 'pay_1001' });
    expect(entry.steps.map((s) => s.state)).toEqual(['awaiting_payment', 'paid', 'dispensing', 'dispensed']);
    expect(a2.status().stock.find((s) => s.slot === 1)?.count).toBe(4);
    expect(display.last()).toMatchObject({ screen: 'thank_you' });
    await nextEvent<Screen>(a2 as never, 'screen', (s) => s.screen === 'idle');
    expect(inner.pulses).toBe(1);
  });

  it('no drop seen -> vend_failed after maxPulses, refund screen', async () => {
    const { relay, agent, dispenser, display } = await setup({ fault: 'no_drop' });
    const r = selectOk(agent);
    paid(relay, r.orderId);
    const result = await relay.waitType('vend.result');
    expect(result.msg).toMatchObject({ orderId: r.orderId, result: 'vend_failed', pulses: 2 });
    expect(dispenser.pulses).toBe(2);
    expect(vendState(agent, r.orderId)).toMatchObject({ state: 'vend_failed', result: 'vend_failed' });
    expect(display.last()?.screen).toBe('vend_failed');
    expect(agent.status().stock.find((s) => s.slot === 1)?.count).toBe(5);
  });

  it('jam -> jammed after one pulse, and the slot stops selling', async () => {
    const { relay, agent, dispenser } = await setup({ fault: 'jam' });
    const r = selectOk(agent);
    paid(relay, r.orderId);
    const result = await relay.waitType('vend.result');
    expect(result.msg).toMatchObject({ orderId: r.orderId, result: 'jammed', pulses: 1 });
    expect(dispenser.pulses).toBe(1);
    expect(vendState(agent, r.orderId)?.state).toBe('vend_failed');
    expect(agent.select(1)).toMatchObject({ ok: false, reason: 'slot_jammed' });
    expect(agent.status().stock.find((s) => s.slot === 1)?.jammed).toBe(true);
  });

  it('deadline passes -> order.cancel(timeout), expired screen, then idle', async () => {
    const { relay, agent } = await setup({ config: { payment: { deadlineSeconds: 0.3 } } });
    const r = selectOk(agent);
    const expired = nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'expired');
    const cancel = await relay.waitType('order.cancel');
    expect(cancel.msg).toMatchObject({ orderId: r.orderId, reason: 'timeout' });
    expect(vendState(agent, r.orderId)?.state).toBe('cancelled');
    await expired;
    await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'idle');
  });

  it('order.paid after a cancel -> not_dispensed, no pulse', async () => {
    const { relay, agent, dispenser } = await setup();
    const r = selectOk(agent);
    expect(agent.cancel()).toEqual({ ok: true, orderId: r.orderId });
    expect((await relay.waitType('order.cancel')).msg).toMatchObject({ orderId: r.orderId, reason: 'customer' });
    const p = paid(relay, r.orderId);
    const result = await relay.waitType('vend.result');
    expect(result.msg).toMatchObject({ orderId: r.orderId, result: 'not_dispensed', pulses: 0 });
    await relay.waitType('ack', (m) => m.ackId === p.id);
    expect(dispenser.pulses).toBe(0);
    const entry = vendState(agent, r.orderId)!;
    expect(entry).toMatchObject({ state: 'cancelled', result: 'not_dispensed', paymentId: 'pay_1001' });
    expect(entry.steps.at(-1)?.detail).toMatch(/after cancelled: not dispensed/);
  });

  it('order.paid for an order the kiosk never made -> not_dispensed', async () => {
    const { relay, dispenser } = await setup();
    paid(relay, 'ord_unknown123');
    const result = await relay.waitType('vend.result');
    expect(result.msg).toMatchObject({ orderId: 'ord_unknown123', result: 'not_dispensed' });
    expect(dispenser.pulses).toBe(0);
  });

  it('order.paid below the price -> not_dispensed', async () => {
    const { relay, agent, dispenser } = await setup();
    const r = selectOk(agent);
    paid(relay, r.orderId, undefined, 100);
    const result = await relay.waitType('vend.result');
    expect(result.msg).toMatchObject({ orderId: r.orderId, result: 'not_dispensed' });
    expect(vendState(agent, r.orderId)?.state).toBe('not_dispensed');
    expect(dispenser.pulses).toBe(0);
  });

  it('duplicate order.paid (same id re-delivered, and a new id) -> one pulse', async () => {
    const { relay, agent, dispenser } = await setup();
    const r = selectOk(agent);
    const p1 = paid(relay, r.orderId, 'm_paid_one');
    await relay.waitType('vend.result');
    // the relay did not see our ack and re-sends the very same frame
    relay.send({ type: 'order.paid', orderId: r.orderId, paymentId: 'pay_1001', amount: 150000, currency: 'ARS' }, p1.id as string);
    // ... and a relay bug re-issues it under a new id
    const p2 = paid(relay, r.orderId, 'm_paid_two');
    await relay.waitFrame((f) => f.msg.type === 'ack' && f.msg.ackId === p2.id, 'ack of the second paid');
    expect(relay.of('ack').filter((f) => f.msg.ackId === p1.id)).toHaveLength(2);
    expect(dispenser.pulses).toBe(1);
    expect(relay.of('vend.result')).toHaveLength(1);
    expect(vendState(agent, r.orderId)?.steps.map((s) => s.state)).toEqual(['awaiting_payment', 'paid', 'dispensing', 'dispensed']);
  });

  it('order.rejected -> rejected screen with the relay message, then idle', async () => {
    const { relay, agent, display } = await setup();
    const r = selectOk(agent);
    relay.send({ type: 'order.rejected', orderId: r.orderId, reason: 'price_mismatch', message: 'Precio desactualizado' });
    await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'rejected');
    expect(display.last()).toMatchObject({ screen: 'rejected', message: 'Precio desactualizado' });
    expect(vendState(agent, r.orderId)?.state).toBe('rejected');
    await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'idle');
    selectOk(agent); // free again
  });

  it('order.accepted with a per-order QR replaces the POS QR; order.expired cancels', async () => {
    const { relay, agent, display } = await setup();
    const r = selectOk(agent);
    const qr = orderQr(150000);
    const acc = relay.send({ type: 'order.accepted', orderId: r.orderId, amount: 150000, currency: 'ARS', qr });
    await relay.waitType('ack', (m) => m.ackId === acc.id);
    expect(display.last()).toMatchObject({ screen: 'pay', qr });
    expect(vendState(agent, r.orderId)).toMatchObject({ relayAmount: 150000, qr });
    relay.send({ type: 'order.expired', orderId: r.orderId });
    await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'expired');
    expect(vendState(agent, r.orderId)?.state).toBe('cancelled');
    // the relay expired it: no cancel frame needed
    expect(relay.of('order.cancel')).toHaveLength(0);
  });

  it('a per-order QR that charges another amount, or is broken, is never shown: the order is cancelled, out of service says why', async () => {
    for (const bad of [orderQr(15000), orderQr(150000).slice(0, -4) + '0000']) {
      const { relay, agent, display } = await setup();
      const r = selectOk(agent);
      relay.send({ type: 'order.accepted', orderId: r.orderId, amount: 150000, currency: 'ARS', qr: bad });
      const shown = await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'out_of_service');
      expect(shown).toMatchObject({ reason: 'fault', orderId: r.orderId });
      expect(shown.message).toMatch(/payment QR/);
      expect(display.last()?.qr).toBeUndefined();
      expect(vendState(agent, r.orderId)?.state).toBe('cancelled');
      const cancel = await relay.waitType('order.cancel');
      expect(cancel.msg).toMatchObject({ orderId: r.orderId, reason: 'fault' });
    }
  });

  it('a kiosk whose orders are payable only once accepted shows "preparing" until then, never the POS sticker', async () => {
    const { relay, agent, display } = await setup({ relay: { qrOnAccept: true } });
    const r = selectOk(agent);
    expect(display.last()).toMatchObject({ screen: 'pay', orderId: r.orderId });
    expect(display.last()?.qr).toBeUndefined();
    expect(display.last()?.message).toBeTruthy();
    const qr = orderQr(150000);
    const acc = relay.send({ type: 'order.accepted', orderId: r.orderId, amount: 150000, currency: 'ARS', qr });
    await relay.waitType('ack', (m) => m.ackId === acc.id);
    expect(display.last()).toMatchObject({ screen: 'pay', qr });
    agent.cancel();

    // a static-QR model (attended, orders/static): the sticker once the order is on the POS
    const r2 = selectOk(agent);
    expect(display.last()?.qr).toBeUndefined();
    const acc2 = relay.send({ type: 'order.accepted', orderId: r2.orderId, amount: 150000, currency: 'ARS' });
    await relay.waitType('ack', (m) => m.ackId === acc2.id);
    await nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'pay' && s.qr === POS_QR);
  });

  it('re-sends the outbox, in order, after the socket is cut and the link comes back', async () => {
    const { relay, agent } = await setup({ relay: { autoAck: false } });
    const r = selectOk(agent);
    const first = await relay.waitType('order.ready');
    agent.cancel();
    const cancel1 = await relay.waitType('order.cancel');
    expect(agent.status().outboxPending).toBe(2);
    relay.cut();
    const hello2 = await relay.waitHello(2);
    expect(hello2.msg.openOrders).toEqual([]);
    const again = await relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'order.cancel', 'cancel re-sent');
    const resent = relay.frames.filter((f) => f.conn === 2 && (f.msg.type === 'order.ready' || f.msg.type === 'order.cancel'));
    expect(resent.map((f) => f.msg.id)).toEqual([first.msg.id, cancel1.msg.id]);
    expect(again.raw).toBe(cancel1.raw);
    expect(first.msg.orderId).toBe(r.orderId);
    // acks empty the outbox
    relay.send({ type: 'ack', ackId: first.msg.id });
    relay.send({ type: 'ack', ackId: cancel1.msg.id });
    // frames are handled in order: once the pong is back, both acks have been applied
    relay.send({ type: 'ping', at: 77 });
    await relay.waitType('pong', (m) => m.at === 77);
    expect(agent.status().outboxPending).toBe(0);
  }, 15_000);

  it('hello after a reconnect lists the open order; the relay re-sends an unacked order.paid', async () => {
    const { relay, agent, dispenser } = await setup();
    const r = selectOk(agent);
    await relay.waitType('order.ready');
    relay.cut();
    // paid while the link is down: queued at the relay, delivered after the next hello
    paid(relay, r.orderId);
    const hello2 = await relay.waitHello(2);
    expect(hello2.msg.openOrders).toEqual([{ orderId: r.orderId, state: 'awaiting_payment' }]);
    const result = await relay.waitType('vend.result');
    expect(result.msg).toMatchObject({ orderId: r.orderId, result: 'dispensed' });
    expect(dispenser.pulses).toBe(1);
  });

  it('a malformed or unknown relay frame gets an error frame back and the agent carries on', async () => {
    const { relay, agent } = await setup();
    relay.sendRaw('this is not json');
    expect((await relay.waitType('error', (m) => m.code === 'malformed')).msg.message).toMatch(/not JSON/);
    relay.sendRaw(JSON.stringify({ v: 1, id: 'x-unknown', type: 'order.teleport' }));
    expect((await relay.waitType('error', (m) => m.code === 'unknown_type')).msg.refId).toBe('x-unknown');
    relay.sendRaw(JSON.stringify({ v: 1, id: 'x-bad', type: 'order.paid', orderId: 'nope' }));
    expect((await relay.waitType('error', (m) => m.code === 'invalid')).msg.refId).toBe('x-bad');
    relay.sendRaw(JSON.stringify({ v: 7, id: 'x-v7', type: 'ping' }));
    await relay.waitType('error', (m) => m.code === 'unsupported_version');
    // alive and well
    relay.send({ type: 'ping', at: 4242 });
    await relay.waitType('pong', (m) => m.at === 4242);
    expect(agent.status().relay.online).toBe(true);
    expect(relay.connections).toBe(1);
    selectOk(agent);
  });

  it('a pong-less relay is dropped after two ping intervals', async () => {
    const cap = captureLogger();
    const relay = await FakeRelay.start({ answerPings: false });
    cleanups.push(() => relay.close());
    const { dir, cleanup } = tempDir('qrk-ping-');
    cleanups.push(cleanup);
    const cfg = agentConfig(dir, relay.url) as { relay: Record<string, unknown> };
    cfg.relay = { ...cfg.relay, pingIntervalSeconds: 0.1 };
    const agent = await startAgent(cfg as AgentConfigInput, { logger: cap.logger, control: false, display: new NullDisplay(), buttons: new SimButtons(), dispenser: simDispenser() });
    cleanups.push(() => agent.close());
    await relay.waitHello(1);
    const t0 = Date.now();
    await relay.waitHello(2);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(180); // two intervals of silence at least
    expect(cap.lines.some((l) => l.msg === 'relay did not answer ping: dropping the link')).toBe(true);
    expect(relay.of('ping').length).toBeGreaterThanOrEqual(2);
  });

  it('after a restart an awaiting order resumes its pay screen; a stale one is cancelled', async () => {
    const s = await setup({ config: { payment: { deadlineSeconds: 60 } } });
    const r = selectOk(s.agent);
    await s.relay.waitType('order.ready');
    await s.agent.close();
    const a2 = await s.restart();
    expect(a2.status()).toMatchObject({ state: 'awaiting_payment', order: { orderId: r.orderId } });
    expect(s.display.last()).toMatchObject({ screen: 'pay', orderId: r.orderId, qr: POS_QR });
    const hello = await s.relay.waitHello(2);
    expect(hello.msg.openOrders).toEqual([{ orderId: r.orderId, state: 'awaiting_payment' }]);
  });

  it('an awaiting order whose deadline passed while the agent was down is cancelled at start', async () => {
    const s = await setup({ config: { payment: { deadlineSeconds: 0.2 } } });
    const r = selectOk(s.agent);
    await s.relay.waitType('order.ready');
    await s.agent.close();
    // the agent is down: nothing to await but the clock
    await new Promise((res) => setTimeout(res, 300));
    const a2 = await s.restart();
    expect(vendState(a2, r.orderId)?.state).toBe('cancelled');
    const cancel = await s.relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'order.cancel', 'cancel after restart');
    expect(cancel.msg).toMatchObject({ orderId: r.orderId, reason: 'timeout' });
    expect(a2.status().state).toBe('idle');
  });

  it('buttons select and cancel', async () => {
    const { agent, buttons, relay } = await setup();
    buttons.press(1);
    const ready = await relay.waitType('order.ready');
    expect(agent.status().order?.orderId).toBe(ready.msg.orderId);
    buttons.pressCancel();
    expect((await relay.waitType('order.cancel')).msg).toMatchObject({ orderId: ready.msg.orderId, reason: 'customer' });
  });
});

/** An offline dynamic QR for `amount` ARS minor units, as the relay composes one. */
function orderQr(amount: number): string {
  return buildMercadoPagoQr({ collectorId: 123, currency: 'ARS', amountMinor: amount, merchantName: 'Test Shop', merchantCity: 'CABA', referenceLabel: 'ord_test', terminalLabel: 'POS1' });
}
