import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdtempSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithout } from './helpers/ci.js';
import { BUILD_TIMEOUT_MS, buildRelease } from './helpers/release.js';


// `qrkiosk install --root DIR` run from the built release with plain node, as a technician would
// run it from an unpacked tarball: the tree it writes, a second run that changes nothing, and the
// units it installed checked by systemd-analyze against that tree.

let release: ReturnType<typeof buildRelease>;
const roots: string[] = [];

beforeAll(() => {
  release = buildRelease();
}, BUILD_TIMEOUT_MS);

afterAll(() => {
  rmSync(release.out, { recursive: true, force: true });
  for (const r of roots) rmSync(r, { recursive: true, force: true });
}, BUILD_TIMEOUT_MS);

function newRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'qrkiosk-root-'));
  roots.push(root);
  // a Pi without the gpio/plugdev/lp groups (plain Debian 12): only existing groups are joined
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\ndialout:x:20:\nvideo:x:44:\ninput:x:101:\n');
  return root;
}

function install(root: string, ...extra: string[]) {
  const r = spawnSync(process.execPath, [join(release.dir, 'bin', 'qrkiosk.js'), 'install', 'agent', '--root', root, ...extra], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Every path under root with its type, mode and content hash (or link target). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const abs = join(root, rel);
    const st = lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(abs)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${mode}`;
      for (const e of readdirSync(abs)) walk(join(rel, e));
    } else out[rel] = `file ${mode} ${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)} ${st.mtimeMs}`;
  };
  walk('.');
  return out;
}

describe('qrkiosk install agent --root', () => {
  it('--dry-run prints every step and touches nothing', () => {
    const root = newRoot();
    const before = snapshot(root);
    const r = install(root, '--dry-run');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/would\s+copy release/);
    expect(r.out).toMatch(/would\s+install \/etc\/systemd\/system\/qrkiosk-agent\.service/);
    expect(r.out).toContain('Nothing was changed.');
    expect(snapshot(root)).toEqual(before);
  });

  it('writes the expected tree; a second run changes nothing; the units pass systemd-analyze verify --root', () => {
    const root = newRoot();
    const first = install(root, '--profile', 'gpio-spiral-4');
    expect(first.err).toBe('');
    expect(first.code).toBe(0);

    // the release side by side under /opt/qrkiosk, reached through `current`
    expect(readlinkSync(join(root, 'opt/qrkiosk/current'))).toBe(`releases/${release.version}`);
    expect(existsSync(join(root, 'opt/qrkiosk/releases', release.version, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(root, 'opt/qrkiosk/releases', release.version, 'node_modules/tsx'))).toBe(false);
    // the relay's console pages ship too: a relay run from a release serves them
    for (const page of ['index.html', 'login.html', 'app.js']) expect(existsSync(join(release.dir, 'web/console', page))).toBe(true);
    expect(readlinkSync(join(root, 'usr/local/bin/qrkiosk'))).toBe('/opt/qrkiosk/current/bin/qrkiosk.js');
    // config from the profile, token 0400, /etc/qrkiosk 0750
    expect(readFileSync(join(root, 'etc/qrkiosk/agent.yaml'), 'utf8')).toMatch(/^ {2}profile: gpio-spiral-4/m);
    expect(statSync(join(root, 'etc/qrkiosk/agent.yaml')).mode & 0o777).toBe(0o640);
    expect(statSync(join(root, 'etc/qrkiosk/token')).mode & 0o777).toBe(0o400);
    expect(statSync(join(root, 'etc/qrkiosk')).mode & 0o777).toBe(0o750);
    // every unit of the release but the relay's, and every udev rule
    const shipped = readdirSync(join(release.dir, 'systemd')).filter((f) => f.endsWith('.service') && !f.includes('relay'));
    expect(readdirSync(join(root, 'etc/systemd/system')).sort()).toEqual(shipped.sort());
    const rules = readdirSync(join(release.dir, 'hardware/udev')).filter((f) => f.endsWith('.rules'));
    expect(readdirSync(join(root, 'etc/udev/rules.d')).sort()).toEqual(rules.sort());
    const unit = readFileSync(join(root, 'etc/systemd/system/qrkiosk-agent.service'), 'utf8');
    expect(unit).toMatch(new RegExp(`^ExecStart=${process.execPath}( --\\S+)* /opt/qrkiosk/current/bin/qrkiosk\\.js agent `, 'm'));
    // only groups that exist; the rest is said, and the system steps are printed, not run
    expect(first.out).toMatch(/usermod -aG dialout,video,input qrkiosk/);
    expect(first.out).toMatch(/groups gpio, plugdev, lp do not exist here/);
    expect(first.out).toMatch(/printed\s+start qrkiosk-agent\.service at boot: systemctl enable/);
    expect(first.out).toMatch(/Left for you:[\s\S]*usermod -aG qrkiosk "\$USER"/);

    // a technician's edit survives, and nothing else moves
    writeFileSync(join(root, 'etc/qrkiosk/agent.yaml'), '# edited by hand\n');
    const before = snapshot(root);
    const second = install(root, '--profile', 'gpio-spiral-4');
    expect(second.code).toBe(0);
    expect(second.out).toContain('Nothing to change: already installed.');
    expect(second.out).not.toMatch(/^\s+done\s/m);
    expect(snapshot(root)).toEqual(before);

    // systemd-analyze resolves units, targets and binaries inside the tree: give it the system's
    // own units and stand-ins for the programs the units run
    const present = spawnSync('systemd-analyze', ['--version']).status === 0;
    if (skipWithout(present, 'systemd-analyze', 'systemd')) return;
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
    for (const bin of [process.execPath, '/bin/bash', '/usr/bin/cage', '/usr/bin/chromium', '/bin/sh']) {
      mkdirSync(join(root, bin, '..'), { recursive: true });
      writeFileSync(join(root, bin), '#!/bin/sh\n');
      chmodSync(join(root, bin), 0o755);
    }
    const units = readdirSync(join(root, 'etc/systemd/system'));
    const v = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...units], { encoding: 'utf8' });
    expect(v.stderr).toBe('');
    expect(v.status).toBe(0);
  });

  it('refuses a directory that is not a release, saying what to do', () => {
    const root = newRoot();
    const r = install(root, '--from', tmpdir());
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/is not a qrkiosk release \(no release\.json\): make one with `npm run release`/);
  });
});
