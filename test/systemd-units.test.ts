import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './agent-helpers.js';
import { skipWithout } from './helpers/ci.js';

// The units ship to Raspberry Pis where a typo means a kiosk that does not start after a power cut.
// systemd-analyze (Debian's systemd package, on the CI image) checks them like systemd would.

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** [Unit] / [Service] / [Install] of a unit file as text */
function sectionOf(text: string, name: string): string {
  const parts = text.split(/^\[(\w+)\]$/m);
  const i = parts.indexOf(name);
  return i < 0 ? '' : parts[i + 1]!;
}

/** absolute programs of every Exec*= line (after systemd's -@:+! prefixes) */
function programs(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^Exec\w+=([-@:+!]*)(\S+)/gm)) out.push(m[2]!);
  return out;
}

describe('systemd units', () => {
  const units = readdirSync('systemd').filter((f) => f.endsWith('.service'));
  const read = (u: string) => readFileSync(`systemd/${u}`, 'utf8');

  it('ship an agent and a relay unit with watchdog and restart', () => {
    expect(units).toEqual(expect.arrayContaining(['qrkiosk-agent.service', 'qrkiosk-relay.service', 'qrkiosk-safe-outputs.service']));
    for (const u of ['qrkiosk-agent.service', 'qrkiosk-relay.service']) {
      const text = read(u);
      expect(text).toMatch(/^Type=notify$/m);
      expect(text).toMatch(/^NotifyAccess=all$/m);
      expect(text).toMatch(/^WatchdogSec=\d+$/m);
      expect(text).toMatch(/^Restart=always$/m);
    }
    for (const u of units) {
      // StartLimit* is ignored (with a warning) when put in [Service]
      expect(sectionOf(read(u), 'Service'), u).not.toMatch(/StartLimit/);
    }
    // sysfs GPIO needs a writable /sys and real /dev nodes on the kiosk
    for (const u of ['qrkiosk-agent.service', 'qrkiosk-safe-outputs.service']) {
      expect(read(u), u).not.toMatch(/^PrivateDevices=yes/m);
      expect(read(u), u).not.toMatch(/^ProtectKernelTunables=yes/m);
    }
  });

  it('the agent unit starts on Raspberry Pi OS Bookworm/Trixie and Debian 12 whatever groups exist, and never gives up', () => {
    const agent = read('qrkiosk-agent.service');
    // a missing group fails every start with 216/GROUP; Group= would also drop the user's own groups
    expect(agent).not.toMatch(/^SupplementaryGroups=/m);
    expect(agent).not.toMatch(/^Group=/m);
    expect(agent).toMatch(/^User=qrkiosk$/m);
    // ProtectClock= implies a device allow-list that blocks GPIO/serial/HID on systemd < 252
    expect(agent).not.toMatch(/^ProtectClock=/m);
    expect(agent).not.toMatch(/^DeviceAllow=/m);
    // a late device must not leave the unit failed for good
    expect(sectionOf(agent, 'Unit')).toMatch(/^StartLimitIntervalSec=0$/m);
    expect(sectionOf(agent, 'Service')).toMatch(/^RestartSec=\d+$/m);
  });

  it('outputs are made safe after every end of the agent and at boot before it', () => {
    const agent = read('qrkiosk-agent.service');
    expect(sectionOf(agent, 'Service')).toMatch(/^ExecStopPost=\/usr\/bin\/node \/opt\/qrkiosk\/bin\/qrkiosk\.js safe-outputs --config \/etc\/qrkiosk\/agent\.yaml$/m);
    expect(sectionOf(agent, 'Unit')).toMatch(/^After=qrkiosk-safe-outputs\.service$/m);
    const boot = read('qrkiosk-safe-outputs.service');
    expect(sectionOf(boot, 'Unit')).toMatch(/^Before=qrkiosk-agent\.service$/m);
    expect(sectionOf(boot, 'Service')).toMatch(/^Type=oneshot$/m);
    expect(sectionOf(boot, 'Service')).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/qrkiosk\/bin\/qrkiosk\.js safe-outputs --config \/etc\/qrkiosk\/agent\.yaml$/m);
    expect(sectionOf(boot, 'Install')).toMatch(/^WantedBy=multi-user\.target$/m);
  });

  it('pass systemd-analyze verify', () => {
    if (skipWithout(hasSystemdAnalyze(), 'systemd-analyze', 'systemd')) return;
    // In a root of their own: the system's units (targets the ours are ordered against), and the
    // programs they run (node, cage, chromium) as stand-ins, so the check does not depend on what
    // this machine has installed; unknown keys, bad values and missing programs still fail.
    const { dir, cleanup } = tempDir('qrk-units-');
    cleanups.push(cleanup);
    const systemUnits = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(d))!;
    cpSync(systemUnits, join(dir, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
    mkdirSync(join(dir, 'etc/systemd/system'), { recursive: true });
    for (const u of units) {
      copyFileSync(`systemd/${u}`, join(dir, 'etc/systemd/system', u));
      for (const prog of programs(read(u))) {
        mkdirSync(join(dir, dirname(prog)), { recursive: true });
        if (!existsSync(join(dir, prog))) writeFileSync(join(dir, prog), '#!/bin/sh\n');
        chmodSync(join(dir, prog), 0o755);
      }
    }
    const r = spawnSync('systemd-analyze', ['verify', `--root=${dir}`, ...units], { encoding: 'utf8' });
    // warnings about a unit's own lines look like "qrkiosk-agent.service:12: Unknown key ..."
    expect(r.stderr.split('\n').filter((l) => /\.service(:\d+)?:/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });
});
