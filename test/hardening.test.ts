import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ControlServer } from '../src/agent/control.js';
import { Journal } from '../src/agent/journal.js';
import { silentLogger } from '../src/runtime/log.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { agentConfig } from './agent-helpers.js';
import { TestKiosk, startHarness, type Harness } from './relay-helpers.js';

// The "smaller" problems of issue 8: permissions of the relay's database and the control socket,
// an agent whose journal cannot be created or written, slot bounds, and refusals that must not
// tell a kiosk anything about another kiosk's orders.

const ROOT = new URL('..', import.meta.url).pathname;
const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'qrkiosk-hard-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs `qrkiosk agent --config FILE` to its end (it must end by itself); SIGKILL after 20 s. */
function runAgent(config: object, dir: string, opts: { uid?: number; gid?: number } = {}): Promise<{ code: number | null; stderr: string; timedOut: boolean }> {
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, stringify(config));
  chmodSync(file, 0o644);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'agent', '--config', file], {
      env: { ...process.env, QRKIOSK_RUN_SOURCES: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    // Not a timing assertion: a bound so that the old behaviour (hanging for ever) fails the test.
    const t = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 20_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stderr, timedOut });
    });
  });
}

describe('files the relay and the agent create', () => {
  it("the relay's SQLite file (POS keys inside) is 0600, and an older 0644 file is narrowed", async () => {
    const dir = temp();
    const previous = process.umask(0o022);
    try {
      const path = join(dir, 'relay.sqlite');
      const store = await openRelayStore(path);
      await store.addKiosk({ id: 'k1', posExternalId: 'POS1' });
      expect(statSync(path).mode & 0o777).toBe(0o600);
      for (const side of ['-wal', '-shm']) expect(statSync(path + side).mode & 0o077).toBe(0);
      await store.close();
      chmodSync(path, 0o644);
      await (await openRelayStore(path)).close();
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });

  it('the control socket is never writable by others, even under umask 000', async () => {
    const dir = temp();
    const path = join(dir, 'agent.sock');
    const previous = process.umask(0);
    let server: ControlServer | undefined;
    try {
      const starting = ControlServer.start({ path, handler: () => 1, logger: silentLogger() });
      // listen() binds synchronously: the file exists now, before start() has chmod'ed it
      const early = statSync(path).mode & 0o777;
      server = await starting;
      expect(early & 0o007).toBe(0);
      expect(statSync(path).mode & 0o777).toBe(0o660);
    } finally {
      process.umask(previous);
      await server?.close();
    }
  });

  it('a journal path whose folder cannot be created fails at once with a message naming it', async () => {
    const dir = temp();
    // mkdir under /proc answers ENOENT for ever: Node's recursive mkdirSync looped there
    const cfg = agentConfig(dir, 'ws://127.0.0.1:9/v1/kiosk', { journal: { path: '/proc/qrkiosk-nope/agent.sqlite' } });
    const r = await runAgent(cfg, dir);
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot create the folder of the journal \/proc\/qrkiosk-nope.*journal\.path/);
  });

  it('a journal path that is a folder is reported as the journal, not as the relay', () => {
    const dir = temp();
    mkdirSync(join(dir, 'agent.sqlite'));
    expect(() => new Journal(join(dir, 'agent.sqlite'))).toThrow(/cannot use the journal .*agent\.sqlite: it is a folder.*journal\.path/);
  });

  it('a journal the service user cannot write stops the agent at start with a clear message', async (ctx) => {
    const dir = temp();
    const journalPath = join(dir, 'agent.sqlite');
    new Journal(journalPath).close();
    chmodSync(journalPath, 0o444);
    chmodSync(dir, 0o777);
    const asRoot = process.getuid?.() === 0;
    // root writes whatever the mode says: run the agent as nobody then (setpriv via spawn's uid)
    if (asRoot && spawnSync('true', { uid: 65534, gid: 65534 }).error) return ctx.skip();
    const cfg = agentConfig(dir, 'ws://127.0.0.1:9/v1/kiosk', { journal: { path: journalPath } });
    const r = await runAgent(cfg, dir, asRoot ? { uid: 65534, gid: 65534 } : {});
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot use the journal .*agent\.sqlite: (attempt to write a readonly database|unable to open database file)/);
    expect(r.stderr).not.toMatch(/relay/);
  });
});

describe('kiosk frames the relay must refuse', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.cleanup();
    h = undefined;
  });

  it('order.ready with slot 99999 is refused as malformed', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    const err = k.waitFrame((f) => f.type === 'error');
    k.send({ type: 'order.ready', orderId: 'ord_slot99999', slot: 99999, sku: 'COLA', quantity: 1, amount: 150000, currency: 'ARS', deadline: h.clock.t + 60_000 });
    expect((await err).message).toMatch(/slot/);
    expect(await h.relay.store.getOrder('ord_slot99999')).toBeUndefined();
    await k.close();
  });

  it("a kiosk re-using another kiosk's order id learns nothing about that order", async () => {
    h = await startHarness();
    const other = await h.relay.store.addKiosk({ id: 'k2', posExternalId: 'POS2' });
    const k1 = await TestKiosk.connect(h.relay, h.token);
    expect((await k1.ready('ord_secret0001', { now: h.clock.t })).type).toBe('order.accepted');
    const k2 = await TestKiosk.connect(h.relay, other.token, { kioskId: 'k2' });
    const answer = await k2.ready('ord_secret0001', { now: h.clock.t });
    expect(answer.type).toBe('order.rejected');
    expect(answer.reason).toBe('duplicate');
    expect(String(answer.message)).not.toMatch(/pending|k1|exists/);
    await k1.close();
    await k2.close();
  });
});
