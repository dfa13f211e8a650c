import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../src/agent/config.js';
import { Journal } from '../src/agent/journal.js';
import { fitStatus, type StatusBody } from '../src/agent/status-report.js';
import { Catalog } from '../src/core/catalog.js';
import { kioskCommand, kioskSideCommand } from '../src/core/kiosk-command.js';
import { IllegalTransition } from '../src/core/state-machine.js';
import { AgentMessage } from '../src/protocol/messages.js';
import { generateCommandKeyPair, keyIdOf, parsePublicKeyText, publicKeyText, signCommand, verifyCommand, type CommandBody } from '../src/protocol/signed-command.js';
import { loadOrCreateCommandKey } from '../src/relay/command-key.js';
import { InMemoryFleetRecorder, type CommandRecord } from '../src/relay/fleet-recorder.js';
import { KioskCommands } from '../src/relay/kiosk-commands.js';
import { createLogger } from '../src/runtime/log.js';

// The pieces of the console's kiosk protocol one at a time: the signature, the key file, the
// lifecycle tables, the per-kiosk prices, the replay memory and the snapshot size.

const dir = mkdtempSync(join(tmpdir(), 'qrk-console-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const silent = createLogger('test', { level: 'silent' });

const body = (over: Partial<CommandBody> = {}): CommandBody => ({
  commandId: 'cmd_abcdefgh',
  kioskId: 'k1',
  issuedAt: 1_000_000,
  expiresAt: 1_060_000,
  issuedBy: 'ana',
  action: { kind: 'price.set', sku: 'COLA', price: 1500, currency: 'ARS' },
  ...over,
});

describe('command signature', () => {
  const relay = generateCommandKeyPair();
  const other = generateCommandKeyPair();

  it('verifies what the relay signed, and names the body', () => {
    const s = signCommand(body(), relay.privateKey, relay.publicKey);
    expect(s.keyId).toBe(keyIdOf(relay.publicKey));
    const v = verifyCommand(s, relay.publicKey);
    expect(v).toEqual({ ok: true, body: body() });
  });

  it('refuses a changed byte, another key, no signature, and says which key was expected', () => {
    const s = signCommand(body(), relay.privateKey, relay.publicKey);
    expect(verifyCommand({ ...s, payload: s.payload.replace('1500', '1') }, relay.publicKey)).toMatchObject({ ok: false, reason: 'bad_signature', commandId: 'cmd_abcdefgh' });
    const forged = signCommand(body(), other.privateKey, other.publicKey);
    const r = verifyCommand(forged, relay.publicKey);
    expect(r).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(!r.ok && r.message).toContain(`signed with key ${keyIdOf(other.publicKey)}, this kiosk trusts key ${keyIdOf(relay.publicKey)}`);
    expect(verifyCommand({ payload: s.payload }, relay.publicKey)).toMatchObject({ ok: false, reason: 'unsigned' });
    expect(verifyCommand({ ...s, signature: 'AAAA' }, relay.publicKey)).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('never signs a body a kiosk could not read (too long a life, unknown kind)', () => {
    expect(() => signCommand(body({ expiresAt: 1_000_000 + 25 * 3_600_000 }), relay.privateKey, relay.publicKey)).toThrow(/at most 24 h later/);
    expect(() => signCommand(body({ action: { kind: 'reboot' } as never }), relay.privateKey, relay.publicKey)).toThrow();
  });

  it('the public key travels as one line and comes back the same; a bad line says what to copy', () => {
    const text = publicKeyText(relay.publicKey);
    expect(text).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/);
    expect(keyIdOf(parsePublicKeyText(text))).toBe(keyIdOf(relay.publicKey));
    expect(() => parsePublicKeyText('ssh-ed25519 AAAA')).toThrow(/qrkiosk relay command-key/);
  });

  it('agent.yaml: relay.commandKey is checked where it is written', () => {
    const base = { kioskId: 'k1', relay: { url: 'ws://127.0.0.1:1/v1/kiosk', token: 'qk_12345678' }, slots: [{ slot: 1, sku: 'COLA', stock: 1 }] };
    expect(parseAgentConfig({ ...base, relay: { ...base.relay, commandKey: publicKeyText(relay.publicKey) } }).relay.commandKey).toBe(publicKeyText(relay.publicKey));
    expect(() => parseAgentConfig({ ...base, relay: { ...base.relay, commandKey: 'ed25519:short' } })).toThrow(/key "relay.commandKey": must look like ed25519:/);
  });
});

describe('the relay command key file', () => {
  it('is made 0600 on first use and read back the same afterwards', () => {
    const path = join(dir, 'keys', 'command-key.pem');
    const a = loadOrCreateCommandKey(path);
    expect(a.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = loadOrCreateCommandKey(path);
    expect(b.created).toBe(false);
    expect(b.signer.publicKeyText).toBe(a.signer.publicKeyText);
    expect(readFileSync(path, 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
  });

  it('is refused when others can read it, naming the fix', () => {
    const path = join(dir, 'open.pem');
    loadOrCreateCommandKey(path);
    chmodSync(path, 0o644);
    expect(() => loadOrCreateCommandKey(path)).toThrow(`run chmod 600 ${path}`);
  });
});

describe('command lifecycles (core/kiosk-command.ts)', () => {
  it('relay: issued -> delivered -> applied; a late verdict after expiry is the truth; a finished command stays finished', () => {
    expect(kioskCommand.next('issued', 'ack')).toBe('delivered');
    expect(kioskCommand.next('delivered', 'applied')).toBe('applied');
    expect(kioskCommand.next('issued', 'applied')).toBe('applied'); // the ack was lost
    expect(kioskCommand.next('expired', 'applied')).toBe('applied');
    expect(kioskCommand.terminal).toEqual(['applied', 'refused']);
    expect(() => kioskCommand.next('applied', 'refused')).toThrow(IllegalTransition);
    expect(() => kioskCommand.next('refused', 'ack')).toThrow(IllegalTransition);
  });

  it('kiosk: a running command ends once', () => {
    expect(kioskSideCommand.next('running', 'done')).toBe('applied');
    expect(kioskSideCommand.next('running', 'interrupted')).toBe('applied');
    expect(() => kioskSideCommand.next('applied', 'done')).toThrow(IllegalTransition);
  });
});

describe('the kiosk journal remembers commands', () => {
  it('a command id is kept across reopening; a second insert fails; an illegal finish changes nothing', () => {
    const path = join(dir, 'journal.sqlite');
    const j = new Journal(path);
    j.insertCommand({ id: 'cmd_abcdefgh', kind: 'test.vend', issuedBy: 'ana', issuedAt: 1, expiresAt: 2, payload: '{}', state: 'running', at: 5 });
    expect(() => j.insertCommand({ id: 'cmd_abcdefgh', kind: 'test.vend', issuedBy: 'ana', issuedAt: 1, expiresAt: 2, payload: '{}', state: 'running', at: 6 })).toThrow(/UNIQUE/);
    j.close();
    const again = new Journal(path);
    expect(again.runningCommands().map((c) => c.id)).toEqual(['cmd_abcdefgh']);
    again.finishCommand('cmd_abcdefgh', 'done', { at: 9, message: 'ok', result: { result: 'dispensed' } });
    expect(() => again.finishCommand('cmd_abcdefgh', 'refuse', { at: 10, message: 'no' })).toThrow(IllegalTransition);
    expect(again.getCommand('cmd_abcdefgh')).toMatchObject({ state: 'applied', finishedAt: 9, result: { result: 'dispensed' } });
    again.close();
  });
});

describe('per-kiosk prices at the relay', () => {
  it('switch only when the kiosk confirms, for that kiosk only, and a repeated verdict is kept once', async () => {
    const keys = generateCommandKeyPair();
    const recorder = new InMemoryFleetRecorder();
    let now = 1_000;
    const sent: object[] = [];
    const welcomed: string[] = [];
    const cmds = new KioskCommands({
      recorder,
      signer: { keyId: keyIdOf(keys.publicKey), publicKeyText: publicKeyText(keys.publicKey), sign: (b) => signCommand(b, keys.privateKey, keys.publicKey), deriveSecret: () => 'unused' },
      logger: silent,
      now: () => now,
      ttlMs: 60_000,
      kioskExists: (id) => id === 'k1' || id === 'k2',
    });
    cmds.attach({ isOnline: () => true, sendTo: (_k, f) => (sent.push(f), true), rewelcome: (k) => (welcomed.push(k), true) });
    const base = Catalog.fromInput([{ sku: 'COLA', name: 'Cola', price: 1500, currency: 'ARS' }, { sku: 'AGUA', name: 'Agua', price: 900, currency: 'ARS' }]);

    await expect(cmds.issue('nope', { kind: 'service', inService: false }, { by: 'ana' })).rejects.toThrow(/no kiosk "nope"/);
    await expect(cmds.issue('k1', { kind: 'price.set', sku: 'COLA', price: -1, currency: 'ARS' }, { by: 'ana' })).rejects.toThrow(/command not understood: price/);
    const rec = await cmds.issue('k1', { kind: 'price.set', sku: 'COLA', price: 175_000, currency: 'ARS' }, { by: 'ana' });
    expect(sent).toHaveLength(1);
    expect(cmds.catalogFor('k1', base).get('COLA')?.price).toBe(150_000);

    const verdict = AgentMessage.parse({ v: 1, id: 'm_1', type: 'command.result', commandId: rec.id, outcome: 'applied', at: 1_500, message: 'COLA now 175000' });
    if (verdict.type !== 'command.result') throw new Error('parse');
    const answered = cmds.onResult('k1', verdict);
    // switched before the recorder answered: the kiosk's next frame is priced with it
    expect(cmds.catalogFor('k1', base).get('COLA')?.price).toBe(175_000);
    await answered;
    expect(cmds.catalogFor('k2', base).get('COLA')?.price).toBe(150_000);
    expect(welcomed).toEqual(['k1']);
    now = 2_000;
    await cmds.onResult('k1', verdict);
    const after = (await cmds.get(rec.id)) as CommandRecord;
    expect(after.history.map((h) => h.to)).toEqual(['issued', 'applied']);
    expect(after.kioskAt).toBe(1_500);
    expect((await recorder.kioskPrices()).get('k1')?.prices).toEqual({ COLA: { price: 175_000, currency: 'ARS' } });
  });

  it('a command the kiosk never got is expired by the relay and not sent again', async () => {
    const keys = generateCommandKeyPair();
    let now = 0;
    let online = false;
    const sent: object[] = [];
    const cmds = new KioskCommands({
      recorder: new InMemoryFleetRecorder(),
      signer: { keyId: 'x', publicKeyText: 'x', sign: (b) => signCommand(b, keys.privateKey, keys.publicKey), deriveSecret: () => 'unused' },
      logger: silent,
      now: () => now,
      ttlMs: 10_000,
      kioskExists: () => true,
    });
    cmds.attach({ isOnline: () => online, sendTo: (_k, f) => (sent.push(f), true), rewelcome: () => true });
    const rec = await cmds.issue('k1', { kind: 'test.vend', slot: 1 }, { by: 'ana' });
    expect(sent).toHaveLength(0);
    online = true;
    expect(await cmds.resend('k1')).toBe(1);
    now = 10_001;
    expect(await cmds.expireDue()).toBe(1);
    expect((await cmds.get(rec.id))?.state).toBe('expired');
    expect(await cmds.resend('k1')).toBe(0);
  });
});

describe('status snapshot size', () => {
  it('a machine too big for one frame is sent truncated, recent faults first', () => {
    const fault = { at: 1, device: 'd'.repeat(120), kind: 'k', message: 'm'.repeat(300), active: true };
    const big: StatusBody = {
      agentVersion: '1.0.0',
      startedAt: 1,
      paymentModel: 'unattended',
      screen: 'idle',
      state: 'idle',
      service: null,
      updating: false,
      openOrder: null,
      stock: Array.from({ length: 300 }, (_, i) => ({ slot: i + 1, sku: `SKU-${'x'.repeat(50)}-${i}`, count: 5, full: 10, jammed: false })),
      prices: Array.from({ length: 300 }, (_, i) => ({ sku: `SKU-${'x'.repeat(50)}-${i}`, price: 1000, currency: 'ARS' })),
      faults: { active: Array.from({ length: 50 }, () => fault), recent: Array.from({ length: 20 }, () => fault) },
      outboxPending: 0,
      truncated: false,
    };
    expect(Buffer.byteLength(JSON.stringify(big))).toBeGreaterThan(48 * 1024);
    const fit = fitStatus(big);
    expect(Buffer.byteLength(JSON.stringify(fit))).toBeLessThanOrEqual(48 * 1024);
    expect(fit.truncated).toBe(true);
    expect(fit.faults.recent).toEqual([]);
    expect(fit.stock[0]?.slot).toBe(1);
    // and what is sent is still a valid frame
    expect(() => AgentMessage.parse({ v: 1, id: 'm_x', type: 'kiosk.status', at: 1, ...fit })).not.toThrow();
  });
});
