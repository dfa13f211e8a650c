import { afterEach, describe, expect, it } from 'vitest';
import { QibixxTwin } from '../src/devices/mdb/twin.js';
import { LinePort } from '../src/devices/serial/line-port.js';
import { nextEvent, tempDir } from './agent-helpers.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';
import { KioskSystem, PRICES } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// The whole system with an MDB vending machine: the agent process (real CLI, real serialport on
// one end of a socat pty pair), the machine (a simulated Qibixx board on the other end), the relay
// and the Mercado Pago emulator. The machine gives up waiting before the approval: it never vends
// unpaid, and the customer who paid anyway gets the money back.

let sys: KioskSystem | undefined;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  await sys?.close();
  sys = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function machineSystem(mdbYaml: string, buttons = 'mdb'): Promise<{ sys: KioskSystem; twin: QibixxTwin }> {
  const { dir, cleanup } = tempDir('qrk-mdbref-');
  cleanups.push(cleanup);
  const pair = new PtyPair(dir);
  cleanups.push(() => pair.kill());
  await pair.start();
  const board = new LinePort({ name: 'qibixx', path: pair.b, baudRate: 115200 });
  cleanups.push(() => board.close());
  const twin = new QibixxTwin(board);
  board.start();
  await board.whenOpen();
  const s = await KioskSystem.start({
    hardwareYaml: `  buttons: { driver: ${buttons} }
  display: { driver: log }
  dispenser: { driver: mdb }
  mdb: { path: ${pair.a}${mdbYaml} }`,
  });
  const enabled = nextEvent<string>(twin as never, 'command', (c) => c === 'C,1', 20_000);
  await s.startAgent();
  await enabled.catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; board got ${JSON.stringify(twin.commands)}; agent: ${s.agentOutput.slice(-3000)}`);
  });
  return { sys: s, twin };
}

describe.skipIf(skipPty)('MDB machine that gives up, whole system', () => {
  it('selection first: the machine stops waiting while the customer pays: the order is withdrawn, the late payment refunded, nothing vended', async () => {
    const m = await machineSystem('');
    sys = m.sys;
    const twin = m.twin;
    twin.select(1, '1500.00');
    const orderId = await waitFor('the machine selection to become an order', async () => (await sys!.status()).order?.orderId);
    await sys.waitRelayState(orderId, 'pending');
    const scan = await sys.customerScans();
    // the machine's own timeout: it leaves the vend before any payment
    twin.giveUp();
    await sys.waitAgentState(orderId, 'cancelled');
    await sys.waitRelayState(orderId, 'cancelled');
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await paid.deliveries;
    await sys.waitRelayState(orderId, 'refunded');
    const refunds = await sys.sandbox.refunds();
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ paymentId: paid.paymentId, amountMinor: PRICES.COLA });
    expect(twin.approvals).toEqual([]);
    expect(twin.dispensed).toEqual([]);
  });

  it('selection first: the approval crosses the machine giving up: not dispensed, refunded, nothing vended', async () => {
    const m = await machineSystem('');
    sys = m.sys;
    const twin = m.twin;
    twin.giveUpBeforeApproval = true;
    twin.select(1, '1500.00');
    const orderId = await waitFor('the order', async () => (await sys!.status()).order?.orderId);
    await sys.waitRelayState(orderId, 'pending');
    const scan = await sys.customerScans();
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await paid.deliveries;
    const o = await sys.waitAgentState(orderId, 'vend_failed');
    expect(o).toMatchObject({ result: 'vend_failed', pulses: 0 });
    await sys.waitRelayState(orderId, 'refunded');
    expect(await sys.sandbox.refunds()).toHaveLength(1);
    expect(twin.approvals).toEqual([]);
    expect(twin.violations).toEqual(['C,VEND,1500.00 after the machine gave up']);
    expect(twin.dispensed).toEqual([]);
  });

  it('card first as the second cashless device: paid at the kiosk, chosen on the machine, vended once; a cancel on the machine is refunded', async () => {
    const m = await machineSystem(', style: card-first, address: 2, selectTimeoutMs: 20000', 'none');
    sys = m.sys;
    const twin = m.twin;
    expect(Object.fromEntries(twin.setconf)).toEqual({ 'mdb-addr': '0x60', 'mdb-always-idle': '0' });
    // 1: paid, then the customer chooses the paid item on the machine
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    let scan = await sys.customerScans();
    const started = nextEvent<string>(twin as never, 'command', (c) => c.startsWith('C,START,'), 20_000);
    await (await sys.sandbox.pay({ checkoutId: scan.checkoutId })).deliveries;
    expect(await started).toBe('C,START,1500.00');
    expect(twin.selectInSession(1, '1500.00')).toBe(true);
    await sys.waitRelayState(orderId!, 'vended').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; board got ${JSON.stringify(twin.commands)}; agent: ${sys!.agentOutput.slice(-4000)}`);
    });
    expect(twin.dispensed).toEqual([{ item: 1, price: '1500.00' }]);
    expect(twin.session).toBeNull(); // the session was ended: no second product on that payment
    // 2: paid, then the customer cancels on the machine: refunded
    const second = await sys.select(1);
    await sys.waitRelayState(second.orderId!, 'pending');
    scan = await sys.customerScans();
    const started2 = nextEvent<string>(twin as never, 'command', (c) => c.startsWith('C,START,'), 20_000);
    const paid2 = await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await paid2.deliveries;
    await started2;
    twin.giveUp();
    await sys.waitRelayState(second.orderId!, 'refunded');
    expect((await sys.sandbox.refunds()).map((r) => r.paymentId)).toEqual([paid2.paymentId]);
    expect(twin.dispensed).toHaveLength(1);
    expect(twin.violations).toEqual([]);
  });
});
