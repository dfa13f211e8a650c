import Database from 'better-sqlite3';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../src/agent/agent.js';
import { BUILD_TIMEOUT_MS, buildRelease } from './helpers/release.js';
import { KioskSystem } from './helpers/system.js';
import { JOURNAL_MIGRATIONS } from '../src/agent/journal-schema.js';
import { waitFor } from './helpers/wait.js';

// `qrkiosk update` for real: the release built by `npm run release`, installed with
// `qrkiosk install --root`, its agent started by a stand-in systemctl (test/fixtures/systemd) from
// the installed unit, talking to a real relay. The rollback logic under test is the product's own
// (src/install/update.ts, run by the release's CLI). Broken releases are made the way they break in
// the field: a start that hangs, a protocol the relay refuses (with a newer journal schema).

const FAKE_SYSTEMCTL_DIR = resolve(import.meta.dirname, 'fixtures', 'systemd');
let release: ReturnType<typeof buildRelease>;
let sys: KioskSystem;
let work: string;
let root: string;
let env: NodeJS.ProcessEnv;

function releaseCli(version: string): string {
  return join(root, 'opt/qrkiosk/releases', version, 'bin/qrkiosk.js');
}

function systemctl(...args: string[]) {
  const r = spawnSync(join(FAKE_SYSTEMCTL_DIR, 'systemctl'), args, { env, encoding: 'utf8' });
  if (r.status !== 0 && args[0] !== 'is-active') throw new Error(`systemctl ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** A copy of the built release under another version, changed by `patch`. */
function variant(version: string, patch: (dir: string) => void = () => {}): string {
  const dir = join(work, `qrkiosk-${version}`);
  cpSync(release.dir, dir, { recursive: true, verbatimSymlinks: true });
  for (const f of ['package.json', 'release.json']) {
    const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { version: string };
    j.version = version;
    writeFileSync(join(dir, f), JSON.stringify(j, null, 2));
  }
  patch(dir);
  return dir;
}

/** The one file of a release's bundled dist/ (scripts/bundle-dist.mjs) whose text matches `re`. */
function distFileWith(dir: string, re: RegExp): string {
  const cli = join(dir, 'dist', 'cli');
  const hits = readdirSync(cli)
    .filter((f) => f.endsWith('.js'))
    .map((f) => join(cli, f))
    .filter((f) => re.test(readFileSync(f, 'utf8')));
  if (hits.length !== 1) throw new Error(`${re} is in ${hits.length} files of ${cli}, not one`);
  return hits[0]!;
}

function update(...args: string[]): Promise<{ code: number | null; out: string; err: string }> & { output: () => string } {
  let out = '';
  let err = '';
  const child = spawn(process.execPath, [releaseCli('0.1.0'), 'update', ...args, '--root', root], { env });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) => child.once('close', (code) => r({ code, out, err })));
  return Object.assign(done, { output: () => out });
}

async function runningAs(version: string): Promise<AgentStatus> {
  return waitFor(`the agent ${version} online`, async () => {
    const s = await sys.status().catch(() => undefined);
    return s && s.agentVersion === version && s.relay.online ? s : undefined;
  }, 30_000);
}

beforeAll(async () => {
  release = buildRelease();
  expect(release.version).toBe('0.1.0');
  work = mkdtempSync(join(tmpdir(), 'qrkiosk-update-'));
  root = join(work, 'root');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  env = {
    ...process.env,
    PATH: `${FAKE_SYSTEMCTL_DIR}:${process.env.PATH}`,
    QRKIOSK_FAKE_SYSTEMD_ROOT: root,
    QRKIOSK_FAKE_SYSTEMD_STATE: join(work, 'systemd'),
  };
  const inst = spawnSync(process.execPath, [join(release.dir, 'bin/qrkiosk.js'), 'install', 'agent', '--root', root], { env, encoding: 'utf8' });
  expect(inst.stderr).toBe('');
  sys = await KioskSystem.start();
  writeFileSync(join(root, 'etc/qrkiosk/agent.yaml'), readFileSync(join(sys.dir, 'agent.yaml')));
  systemctl('restart', 'qrkiosk-agent.service');
  await runningAs('0.1.0');
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (env) systemctl('stop', 'qrkiosk-agent.service');
  await sys?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  if (release) rmSync(release.out, { recursive: true, force: true });
}, BUILD_TIMEOUT_MS);

describe('qrkiosk update', () => {
  it('rolls back by itself a release that never reaches READY', async () => {
    const dir = variant('0.1.1-hang', (d) => {
      // the new release's start hangs before the agent is up (a dependency waiting forever)
      const main = join(d, 'dist/cli/main.js');
      writeFileSync(main, `setInterval(() => {}, 60_000);\nawait new Promise(() => {});\n${readFileSync(main, 'utf8')}`);
    });
    cpSync(dir, join(root, 'opt/qrkiosk/releases/0.1.1-hang'), { recursive: true, verbatimSymlinks: true });

    const r = await update('0.1.1-hang', '--deadline', '6');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/0\.1\.1-hang was not kept: release 0\.1\.1-hang did not report READY \(systemd: active; control socket: no answer\) within 6 s; 0\.1\.0 runs again/);
    expect(r.out).toMatch(/switching back to 0\.1\.0/);
    expect(readlinkSync(join(root, 'opt/qrkiosk/current'))).toBe('releases/0.1.0');
    await runningAs('0.1.0');
  });

  it('rolls back by itself a release that cannot reach the relay; the old agent opens the journal the new one migrated', async () => {
    const dir = variant('0.1.2-norelay', (d) => {
      // a protocol the relay refuses, and one more (additive) journal migration
      const version = /\bPROTOCOL_VERSION=1\b/;
      const messages = distFileWith(d, version);
      writeFileSync(messages, readFileSync(messages, 'utf8').replace(version, 'PROTOCOL_VERSION=2'));
      appendFileSync(distFileWith(d, /\bJOURNAL_MIGRATIONS=\[/), "\nJOURNAL_MIGRATIONS.push({ sql: 'CREATE TABLE newer_feature (x INTEGER)', additive: true });\n");
    });
    const tarball = join(work, 'qrkiosk-0.1.2-norelay-linux.tar.gz');
    spawnSync('tar', ['-C', work, '-czf', tarball, 'qrkiosk-0.1.2-norelay']);

    const r = await update(tarball, '--deadline', '6');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/unpacked release 0\.1\.2-norelay into \/opt\/qrkiosk\/releases\/0\.1\.2-norelay/);
    expect(r.err).toMatch(/0\.1\.2-norelay was not kept: release 0\.1\.2-norelay is READY but made no relay round trip \(relay link: \w+, ws:\/\/127\.0\.0\.1:\d+\/v1\/kiosk\) within 6 s; 0\.1\.0 runs again/);
    expect(readlinkSync(join(root, 'opt/qrkiosk/current'))).toBe('releases/0.1.0');

    // the newer agent migrated the journal; the older one came back on it and reads it
    const status = await runningAs('0.1.0');
    const db = new Database(join(sys.dir, 'agent.sqlite'), { readonly: true });
    // this release's migrations and the newer one's extra step
    expect(db.pragma('user_version', { simple: true })).toBe(JOURNAL_MIGRATIONS.length + 1);
    expect(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'newer_feature'`).get()).toBeTruthy();
    db.close();
    expect(status.stock).toHaveLength(2);
    expect(await sys.journal()).toEqual(expect.any(Array));
  });

  it('an update asked during a vend waits for the vend to end, then switches', async () => {
    const dir = variant('0.1.3');
    cpSync(dir, join(root, 'opt/qrkiosk/releases/0.1.3'), { recursive: true, verbatimSymlinks: true });
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');

    const u = update('0.1.3', '--deadline', '60');
    await waitFor('the update to wait for the open order', () => u.output().includes(`waiting for order ${orderId} (awaiting_payment) to finish`));
    // nothing switched, the agent that holds the vend is the same, and it sells nothing new
    expect(readlinkSync(join(root, 'opt/qrkiosk/current'))).toBe('releases/0.1.0');
    await waitFor('new sales to stop', async () => ((await sys.status()).updating ? true : undefined));
    expect(await sys.select(2)).toMatchObject({ ok: false, reason: 'out_of_service' });

    const scan = await sys.customerScans();
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    const r = await u;
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/release 0\.1\.3 is running: READY and a relay round trip/);
    expect(readlinkSync(join(root, 'opt/qrkiosk/current'))).toBe('releases/0.1.3');
    await runningAs('0.1.3');
    // the vend finished on the old agent before it was restarted: one pulse, dispensed
    expect((await sys.agentOrder(orderId!))?.state).toBe('dispensed');
    expect(sys.pulses()).toHaveLength(1);
  });
});
