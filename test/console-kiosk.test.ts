import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/agent/control.js';
import type { CommandRow } from '../src/agent/journal.js';
import { generateCommandKeyPair, signCommand, type CommandBody } from '../src/protocol/signed-command.js';
import type { CommandRecord } from '../src/relay/fleet-recorder.js';
import { KioskSystem, PRICES } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// The kiosk side of the operator's console, with a real relay and a real agent process on
// loopback (docs/console-kiosk.md): signed commands applied, confirmed or refused by the kiosk;
// what the kiosk reports (status, faults, refills) reaching the relay.

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
const KIOSK = 'kiosk-e2e';
let sys: KioskSystem | undefined;

afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args, '--socket', sys!.socket], { env: { ...process.env, SUDO_USER: 'ana' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) => done({ code, out, err }));
  });
}

const commands = () => sys!.relay.console.commands;

function commandIn(id: string, state: CommandRecord['state']): Promise<CommandRecord> {
  return waitFor(`command ${id} ${state} at the relay`, async () => {
    const c = await commands().get(id);
    return c?.state === state ? c : undefined;
  });
}

async function kioskCommands(): Promise<CommandRow[]> {
  return (await controlRequest(sys!.socket, 'commands', { limit: 50 })) as CommandRow[];
}

async function priceOnKiosk(slot: number): Promise<number | undefined> {
  return (await sys!.status()).stock.find((s) => s.slot === slot)?.price;
}

/** A command body as the relay would sign it, for frames the relay's own module would not send. */
function body(over: Partial<CommandBody> = {}): CommandBody {
  const now = Date.now();
  return {
    commandId: `cmd_test${Math.random().toString(36).slice(2, 12)}`,
    kioskId: KIOSK,
    issuedAt: now,
    expiresAt: now + 60_000,
    issuedBy: 'mallory',
    action: { kind: 'price.set', sku: 'COLA', price: 100, currency: 'ARS' },
    ...over,
  };
}

function refusalsWaiting(n: number) {
  return waitFor(`${n} command refusals recorded at the relay`, async () => {
    const r = await sys!.relay.console.recorder.refusals(KIOSK);
    return r.length >= n ? r : undefined;
  });
}

// several agent starts per test: each wait names what it waited for; this outer limit is only a backstop
describe('signed commands', { timeout: 120_000 }, () => {
  it('a price change is applied by the connected kiosk, confirmed with its time, and the next order is priced with it and accepted', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    expect(await priceOnKiosk(1)).toBe(PRICES.COLA);

    const issued = await commands().issue(KIOSK, { kind: 'price.set', sku: 'COLA', price: 175_000, currency: 'ARS' }, { by: 'ana', reason: 'new price list' });
    const applied = await commandIn(issued.id, 'applied');
    // the kiosk's own time of applying it, within the command's life (same clock on loopback)
    expect(applied.kioskAt).toBeGreaterThanOrEqual(issued.issuedAt);
    expect(applied.kioskAt).toBeLessThanOrEqual(applied.answeredAt!);
    expect(applied.history.map((h) => h.to)).toEqual(['issued', 'delivered', 'applied']);
    expect(applied.result).toMatchObject({ sku: 'COLA', price: 175_000, before: PRICES.COLA });
    const onKiosk = (await kioskCommands()).find((c) => c.id === issued.id);
    expect(onKiosk).toMatchObject({ state: 'applied', kind: 'price.set', issuedBy: 'ana', finishedAt: applied.kioskAt });

    expect(await priceOnKiosk(1)).toBe(175_000);
    const sel = (await sys.select(1)) as { ok: boolean; orderId: string; amount: number };
    expect(sel).toMatchObject({ ok: true, amount: 175_000 });
    const relayOrder = await sys.waitRelayState(sel.orderId, 'pending');
    expect(relayOrder.amount).toBe(175_000);
    const scan = await sys.customerScans(sel.orderId);
    expect(scan.totalMinor).toBe(175_000);
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await sys.waitAgentState(sel.orderId, 'dispensed');
    await sys.waitRelayState(sel.orderId, 'vended');
    expect((await sys.sandbox.refunds()).map((r) => r.paymentId)).not.toContain(paid.paymentId);

    // a restarted kiosk gets the price from the relay's welcome: the relay keeps it for this kiosk
    await sys.stopAgent();
    await sys.startAgent();
    expect(await priceOnKiosk(1)).toBe(175_000);
    expect(await priceOnKiosk(2)).toBe(PRICES.AGUA);
  });

  it('a command that reaches the kiosk after its expiry is refused, and nothing changes', async () => {
    sys = await KioskSystem.start({ proxy: true });
    await sys.startAgent();
    // the relay->kiosk bytes are held on the way (a modem's queue) until the command has expired
    const hold = sys.proxy!.holdDownstream('"type":"command"');
    const issued = await commands().issue(KIOSK, { kind: 'price.set', sku: 'COLA', price: 199_900, currency: 'ARS' }, { by: 'ana', ttlSeconds: 1 });
    await hold.held;
    await waitFor('the command to be past its expiry', () => Date.now() > issued.expiresAt + 10);
    hold.release();

    const onKiosk = await waitFor('the kiosk to refuse the command', async () => (await kioskCommands()).find((c) => c.id === issued.id));
    expect(onKiosk).toMatchObject({ state: 'refused', reason: 'expired' });
    expect(onKiosk.message).toMatch(/expired at .* \(kiosk clock\): not applied/);
    const rec = await waitFor('the relay to hear the refusal', async () => {
      const c = await commands().get(issued.id);
      return c?.history.some((h) => /kiosk refused it/.test(h.detail ?? '')) ? c : undefined;
    });
    expect(rec.state).toBe('expired');
    expect(await priceOnKiosk(1)).toBe(PRICES.COLA);
    const sel = (await sys.select(1)) as { ok: boolean; amount: number };
    expect(sel).toMatchObject({ ok: true, amount: PRICES.COLA });
  });

  it('a replayed command is refused and not applied again, also after the agent was killed and restarted', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const issued = await commands().issue(KIOSK, { kind: 'stock.set', slots: [{ slot: 1, count: 4 }] }, { by: 'ana' });
    const applied = await commandIn(issued.id, 'applied');
    expect(applied.result).toEqual({ 'slot 1': '10 -> 4' });
    expect((await sys.status()).stock.find((s) => s.slot === 1)?.count).toBe(4);
    // a technician counts 7 afterwards: a replay of the old command must not put 4 back
    expect((await cli('stock', 'set', '1', '7')).code).toBe(0);

    sys.relay.hub.sendTo(KIOSK, JSON.parse(issued.frame) as object);
    const [first] = await refusalsWaiting(1);
    expect(first).toMatchObject({ reason: 'replayed', commandId: issued.id, ours: true });
    expect(first!.message).toMatch(/already received .* and applied: not applied again/);

    await sys.killAgent();
    await sys.startAgent();
    sys.relay.hub.sendTo(KIOSK, JSON.parse(issued.frame) as object);
    const after = await refusalsWaiting(2);
    expect(after[0]).toMatchObject({ reason: 'replayed', commandId: issued.id });
    expect((await sys.status()).stock.find((s) => s.slot === 1)?.count).toBe(7);
    expect((await kioskCommands()).filter((c) => c.id === issued.id)).toHaveLength(1);
    const shown = await cli('commands');
    expect(shown.out).toMatch(new RegExp(`${issued.id}\\s+stock.set\\s+ana\\s+applied\\s+stock set: slot 1 = 4`));
    // the relay's record of the command is unchanged by the replays: still applied, once
    expect((await commands().get(issued.id))?.state).toBe('applied');
  });

  it('unsigned, forged, altered and other-kiosk commands are refused with a reason, and nothing is applied', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const hub = sys.relay.hub;
    const relaySigner = sys.relay.console.signer;
    const send = (signed: { payload: string; signature?: string; keyId?: string }, id: string) => hub.sendTo(KIOSK, { v: 1, id, type: 'command', ...signed });

    // signed by a key the kiosk does not trust
    const other = generateCommandKeyPair();
    send(signCommand(body(), other.privateKey, other.publicKey), 'f_forged');
    // no signature at all
    send({ payload: JSON.stringify(body()) }, 'f_unsigned');
    // the relay's real signature over a payload changed on the way
    const genuine = relaySigner.sign(body({ action: { kind: 'price.set', sku: 'COLA', price: 160_000, currency: 'ARS' } }));
    send({ ...genuine, payload: genuine.payload.replace('160000', '100') }, 'f_altered');
    // a real command, for another kiosk
    send(relaySigner.sign(body({ kioskId: 'kiosk-other' })), 'f_other');

    const refusals = await refusalsWaiting(4);
    const byFrame = new Map(refusals.map((r) => [r.frameId, r]));
    expect(byFrame.get('f_forged')).toMatchObject({ reason: 'bad_signature', ours: false });
    expect(byFrame.get('f_forged')!.message).toMatch(new RegExp(`this kiosk trusts key ${relaySigner.keyId}`));
    expect(byFrame.get('f_unsigned')).toMatchObject({ reason: 'unsigned' });
    expect(byFrame.get('f_altered')).toMatchObject({ reason: 'bad_signature' });
    expect(byFrame.get('f_altered')!.message).toMatch(/does not match the command/);
    expect(byFrame.get('f_other')).toMatchObject({ reason: 'wrong_kiosk' });
    expect(await priceOnKiosk(1)).toBe(PRICES.COLA);
    // refused frames are not remembered as seen: only verified commands are journaled
    expect(await kioskCommands()).toEqual([]);
  });

  it('a kiosk without relay.commandKey refuses every command, and the relay records the command refused', async () => {
    sys = await KioskSystem.start({ commandKey: null });
    await sys.startAgent();
    expect((await sys.status()).relay.commandKeyId).toBeNull();
    const issued = await commands().issue(KIOSK, { kind: 'service', inService: false }, { by: 'ana' });
    const refused = await commandIn(issued.id, 'refused');
    expect(refused.refusal).toMatchObject({ reason: 'no_key' });
    expect(refused.refusal!.message).toMatch(/no relay.commandKey in agent.yaml/);
    expect((await sys.status()).service).toBeNull();
    expect(sys.agentOutput).toMatch(/agent.yaml has no relay.commandKey: its commands will be refused/);
  });

  it('out of service shows the screen and refuses presses, survives a restart; a test vend runs the motor', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const off = await commands().issue(KIOSK, { kind: 'service', inService: false }, { by: 'ana', reason: 'cleaning' });
    await commandIn(off.id, 'applied');
    const st = await waitFor('the out-of-service screen', async () => {
      const s = await sys!.status();
      return s.screen === 'out_of_service' ? s : undefined;
    });
    expect(st.service).toMatchObject({ via: 'relay', by: `ana (relay command ${off.id})` });
    expect(await sys.select(1)).toMatchObject({ ok: false, reason: 'out_of_service' });

    await sys.killAgent();
    await sys.startAgent();
    expect(await sys.select(1)).toMatchObject({ ok: false, reason: 'out_of_service' });

    const vend = await commands().issue(KIOSK, { kind: 'test.vend', slot: 2 }, { by: 'ana' });
    const done = await commandIn(vend.id, 'applied');
    expect(done.result).toMatchObject({ slot: 2, result: 'dispensed' });
    expect(sys.pulses().filter((p) => p.slot === 2).length).toBeGreaterThanOrEqual(1);

    const on = await commands().issue(KIOSK, { kind: 'service', inService: true }, { by: 'ana' });
    await commandIn(on.id, 'applied');
    expect(await sys.select(1)).toMatchObject({ ok: true });
  });
});

describe('what the kiosk reports', { timeout: 120_000 }, () => {
  it('a hardware fault on the kiosk appears in the relay fleet status, with stock, version, model and screen', async () => {
    sys = await KioskSystem.start({
      hardwareYaml: `  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: sim
    pulseMs: 60
    dropWindowMs: 400
    maxPulses: 2
    sim: { fault: none, dropDelayMs: 30 }
  dex: { path: /dev/serial/by-id/qrkiosk-test-no-such-port, everyMinutes: 0 }`,
    });
    await sys.startAgent();
    const fleet = sys.relay.console.fleet;
    const first = await waitFor('the first status at the relay', async () => (await fleet.kiosk(KIOSK))?.status ?? undefined);
    expect(first).toMatchObject({ screen: 'idle', state: 'idle', paymentModel: 'unattended', service: null });
    expect(first.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(first.stock).toEqual([
      { slot: 1, sku: 'COLA', count: 10, full: 10, jammed: false },
      { slot: 2, sku: 'AGUA', count: 10, full: 10, jammed: false },
    ]);
    expect(first.faults.active).toEqual([]);

    // the technician's audit read fails: the port is not there
    await expect(controlRequest(sys.socket, 'dex.read')).rejects.toThrow();
    const view = await waitFor('the fault at the relay', async () => {
      const k = await fleet.kiosk(KIOSK);
      return k?.status?.faults.active.length ? k : undefined;
    });
    expect(view.online).toBe(true);
    expect(view.status!.faults.active[0]).toMatchObject({ device: 'DEX port /dev/serial/by-id/qrkiosk-test-no-such-port', kind: 'read', active: true });

    await sys.killAgent();
    await waitFor('the kiosk offline at the relay', async () => ((await fleet.kiosk(KIOSK))?.online === false ? true : undefined));
  });

  it('`qrkiosk stock refill` reaches the relay once, even when the link drops before the relay acks it', async () => {
    sys = await KioskSystem.start({ proxy: true });
    await sys.startAgent();
    expect((await cli('stock', 'set', '1', '3')).code).toBe(0);

    // the relay keeps the refill, its ack is lost with the link: the agent must send it again
    const cut = sys.proxy!.armCut({ downstreamContains: '"ackId":"rfl_' });
    const r = await cli('stock', 'refill');
    expect(r.code).toBe(0);
    await cut;
    await waitFor('the agent outbox to drain after the reconnect', async () => ((await sys!.status()).outboxPending === 0 ? true : undefined));

    expect(sys.proxy!.cuts).toBe(1);
    expect(sys.proxy!.connections).toBeGreaterThanOrEqual(2);
    const refills = await sys.relay.console.fleet.refills(KIOSK);
    expect(refills).toHaveLength(1);
    expect(refills[0]).toMatchObject({
      by: 'ana',
      slots: [
        { slot: 1, sku: 'COLA', before: 3, after: 10 },
        { slot: 2, sku: 'AGUA', before: 10, after: 10 },
      ],
    });
    // it did arrive twice, and was kept once
    expect(sys.relayLogMatching(new RegExp(`duplicate stock.refill ${refills[0]!.refillId}`))).toHaveLength(1);
    const view = await waitFor('the refilled count in the fleet status', async () => {
      const k = await sys!.relay.console.fleet.kiosk(KIOSK);
      return k?.status?.stock.find((s) => s.slot === 1)?.count === 10 ? k : undefined;
    });
    expect(view.lastRefill?.refillId).toBe(refills[0]!.refillId);
  });
});
