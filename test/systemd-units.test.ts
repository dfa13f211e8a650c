import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
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

describe('systemd units', () => {
  const units = readdirSync('systemd').filter((f) => f.endsWith('.service'));

  it('ship an agent and a relay unit with watchdog and restart', () => {
    expect(units).toEqual(expect.arrayContaining(['qrkiosk-agent.service', 'qrkiosk-relay.service']));
    for (const u of ['qrkiosk-agent.service', 'qrkiosk-relay.service']) {
      const text = readFileSync(`systemd/${u}`, 'utf8');
      expect(text).toMatch(/^Type=notify$/m);
      expect(text).toMatch(/^NotifyAccess=all$/m);
      expect(text).toMatch(/^WatchdogSec=\d+$/m);
      expect(text).toMatch(/^Restart=always$/m);
      // StartLimit* is ignored (with a warning) when put in [Service]
      expect(text.split('[Service]')[1]).not.toMatch(/StartLimit/);
    }
    // sysfs GPIO needs a writable /sys and real /dev nodes on the kiosk
    const agent = readFileSync('systemd/qrkiosk-agent.service', 'utf8');
    expect(agent).not.toMatch(/^PrivateDevices=yes/m);
    expect(agent).not.toMatch(/^ProtectKernelTunables=yes/m);
  });

  it('pass systemd-analyze verify', () => {
    if (skipWithout(hasSystemdAnalyze(), 'systemd-analyze', 'systemd')) return;
    const r = spawnSync('systemd-analyze', ['verify', ...units.map((u) => `systemd/${u}`)], { encoding: 'utf8' });
    // warnings about a unit's own lines look like "qrkiosk-agent.service:12: Unknown key ..."
    expect(r.stderr.split('\n').filter((l) => /\.service:\d+:/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });
});
