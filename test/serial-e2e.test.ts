import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { PanelTwin } from '../src/devices/serial/panel-twin.js';
import type { PanelResult } from '../src/devices/serial/panel-protocol.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, agentConfig, nextEvent, tempDir } from './agent-helpers.js';
import { MockWire, resetMockPorts } from './helpers/mock-wire.js';

// A serial-panel kiosk end to end: the agent built from its config (buttons and dispenser both
// on the panel), the panel board simulated on a binding-mock port, the relay played by the test.

const cleanups: Array<() => unknown> = [];
beforeEach(() => resetMockPorts());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(outcome: { result: PanelResult; pulses: number } = { result: 'DROP', pulses: 1 }) {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-pe2e-');
  cleanups.push(cleanup);
  const wire = new MockWire('/dev/serial/by-id/usb-qrkiosk_panel-if00');
  const twin = new PanelTwin(wire, { outcome: () => outcome });
  const config = agentConfig(dir, relay.url, {
    hardware: {
      buttons: { driver: 'serial-panel' },
      dispenser: { driver: 'serial-panel' },
      serialPanel: { path: wire.path, heartbeatMs: 100 },
      display: { driver: 'none' },
    },
  });
  const agent = await startAgent(config, {
    logger: silentLogger(),
    control: false,
    timings: { resultScreenMs: 60, offlineGraceMs: 60, tickMs: 1000 },
    hardware: { serialPort: wire.openPort },
  });
  cleanups.push(() => agent.close(), () => twin.close());
  if (!agent.status().relay.online) await nextEvent<string>(agent as never, 'link', (s) => s === 'online');
  await wire.waitOpen();
  twin.heartbeat();
  return { relay, agent, twin };
}

function paid(relay: FakeRelay, orderId: string) {
  return relay.send({ type: 'order.paid', orderId, paymentId: 'pay_2002', amount: 150000, currency: 'ARS' });
}

describe('agent + serial panel (binding-mock) + relay', () => {
  it('a panel button sells: order, payment, one VEND, dispensed', async () => {
    const { relay, agent, twin } = await setup();
    twin.press(1);
    const ready = await relay.waitType('order.ready');
    expect(ready.msg).toMatchObject({ slot: 1, sku: 'COLA', amount: 150000 });
    expect(twin.vends).toEqual([]);
    paid(relay, ready.msg.orderId as string);
    const r = await relay.waitType('vend.result');
    expect(r.msg).toMatchObject({ result: 'dispensed', pulses: 1 });
    expect(twin.vends).toHaveLength(1);
    expect(twin.vends[0]!.slot).toBe(1);
    expect(agent.status().stock.find((s) => s.slot === 1)?.count).toBe(4);
  });

  it('the panel cancel button cancels an unpaid order', async () => {
    const { relay, twin } = await setup();
    twin.press(1);
    const ready = await relay.waitType('order.ready');
    twin.cancel();
    const c = await relay.waitType('order.cancel');
    expect(c.msg).toMatchObject({ orderId: ready.msg.orderId, reason: 'customer' });
  });

  it('a jam reported by the panel is jammed to the relay and closes the slot', async () => {
    const { relay, agent, twin } = await setup({ result: 'JAM', pulses: 1 });
    twin.press(1);
    const ready = await relay.waitType('order.ready');
    paid(relay, ready.msg.orderId as string);
    const r = await relay.waitType('vend.result');
    expect(r.msg).toMatchObject({ result: 'jammed', pulses: 1 });
    expect(agent.select(1)).toMatchObject({ ok: false, reason: 'slot_jammed' });
  });
});
