import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseRelayConfig, type RelayConfigInput } from '../src/relay/config.js';
import { tempDir } from './agent-helpers.js';
import { skipWithout } from './helpers/ci.js';

// The files of deploy/ are what an operator copies (docs/deploy.md): the tools that will read them
// check them here (nginx -t, haproxy -c, systemd-analyze verify), and the values that must agree
// with the relay (timeouts against the heartbeat, drain against the balancer's checks) are compared
// with the relay's own defaults.

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function has(tool: string, args: string[]): boolean {
  try {
    execFileSync(tool, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const read = (f: string) => readFileSync(`deploy/${f}`, 'utf8');

/** deploy/relay.yaml under today's schema: `store.url` (the PostgreSQL store) swapped for a path until it is in the schema */
function relayDefaults() {
  const input = parse(read('relay.yaml')) as RelayConfigInput & { store: unknown };
  return parseRelayConfig({ ...input, store: { path: '/var/lib/qrkiosk/relay.sqlite' } }, { QRKIOSK_MP_ACCESS_TOKEN: 'APP_USR-test' });
}

/** a self-signed certificate for the TLS lines of the balancer files */
function selfSigned(dir: string): { crt: string; key: string; pem: string } {
  const crt = join(dir, 'relay.crt');
  const key = join(dir, 'relay.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=relay.example.com'], { stdio: 'ignore' });
  const pem = join(dir, 'relay.pem');
  writeFileSync(pem, readFileSync(crt, 'utf8') + readFileSync(key, 'utf8'));
  return { crt, key, pem };
}

describe('deploy/', () => {
  it('relay.yaml: trusts the proxy, lets the balancer hold every kiosk, names an admin listener', () => {
    const c = relayDefaults();
    expect(c.limits.trustProxy).toBe(1); // `true` in the file: one proxy (the balancer)
    expect(c.limits.connectionsPerSource).toBeGreaterThanOrEqual(50_000);
    expect(c.observability.adminListen?.port).toBe(9464);
    expect(parse(read('relay.yaml')).store.url).toMatch(/^postgres:\/\//);
  });

  it('nginx.conf passes nginx -t; the kiosk socket upgrades and outlives the heartbeat', () => {
    const text = read('nginx.conf');
    const kiosk = /location = \/v1\/kiosk \{([\s\S]*?)\}/.exec(text)![1]!;
    expect(kiosk).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(kiosk).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    expect(text).toMatch(/proxy_http_version 1\.1;/);
    // the client address the relay's per-source limits use: replaced, never a client-written list
    expect(text).toMatch(/proxy_set_header X-Forwarded-For \$remote_addr;/);
    expect(text).not.toMatch(/\$proxy_add_x_forwarded_for/);
    const c = relayDefaults();
    const readTimeout = Number(/proxy_read_timeout (\d+)s;/.exec(kiosk)![1]);
    // the relay drops a kiosk silent for two ping intervals: the proxy must wait longer than that
    expect(readTimeout).toBeGreaterThan(2 * c.hub.pingIntervalSeconds);
    expect(text).not.toMatch(/^\s*(ip_hash|sticky|hash)\b/m); // no stickiness directive (docs/deploy.md)

    if (skipWithout(has('nginx', ['-v']), 'nginx', 'nginx')) return;
    const { dir, cleanup } = tempDir('qrk-nginx-');
    cleanups.push(cleanup);
    const tls = selfSigned(dir);
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      text
        .replace('/etc/ssl/qrkiosk/relay.example.com.crt', tls.crt)
        .replace('/etc/ssl/qrkiosk/relay.example.com.key', tls.key)
        .replaceAll('/var/log/nginx/', `${dir}/`),
    );
    const r = spawnSync('nginx', ['-t', '-c', conf, '-e', join(dir, 'error.log')], { encoding: 'utf8' });
    expect(r.stderr).toMatch(/syntax is ok/);
    // run as a user other than root, nginx warns that `user` needs root: that one is expected
    const problems = r.stderr.split('\n').filter((l) => /\[(warn|emerg)\]/.test(l) && !/"user" directive makes sense only/.test(l));
    expect(problems).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('haproxy.cfg passes haproxy -c; it checks /readyz faster than the relay drains', () => {
    const text = read('haproxy.cfg');
    expect(text).toMatch(/http-check send meth GET uri \/readyz/);
    expect(text).toMatch(/http-check expect status 200/);
    expect(text).not.toMatch(/stick-table|cookie |balance source/); // no stickiness
    expect(text).toMatch(/http-request set-header X-Forwarded-For %\[src\]/);
    expect(text).not.toMatch(/option forwardfor/);
    const c = relayDefaults();
    const tunnel = Number(/timeout tunnel (\d+)s/.exec(text)![1]);
    expect(tunnel).toBeGreaterThan(2 * c.hub.pingIntervalSeconds);
    const m = /default-server inter (\d+)s fall (\d+)/.exec(text)!;
    // out of the pool before the relay closes its sockets
    expect(Number(m[1]) * Number(m[2])).toBeLessThan(c.observability.drainSeconds);

    if (skipWithout(has('haproxy', ['-v']), 'haproxy', 'haproxy')) return;
    const { dir, cleanup } = tempDir('qrk-haproxy-');
    cleanups.push(cleanup);
    const tls = selfSigned(dir);
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, text.replace('/etc/haproxy/certs/relay.example.com.pem', tls.pem));
    const r = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toMatch(/Configuration file is valid/);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/\[WARNING\]|\[ALERT\]/);
    expect(r.status).toBe(0);
  });

  it('compose.yaml: postgres + two relays + haproxy; only haproxy publishes; the stop grace outlasts the drain', () => {
    const doc = parse(read('compose.yaml'), { merge: true }) as {
      services: Record<string, { ports?: string[]; stop_grace_period?: string; ulimits?: { nofile: { soft: number } }; command?: string[] | string; hostname?: string; healthcheck?: unknown }>;
    };
    expect(Object.keys(doc.services).sort()).toEqual(['haproxy', 'postgres', 'relay-a', 'relay-b']);
    const c = relayDefaults();
    for (const name of ['relay-a', 'relay-b']) {
      const s = doc.services[name]!;
      expect(s.ports).toBeUndefined();
      expect(s.hostname).toBe(name);
      expect(s.command).toEqual(['node', '/opt/qrkiosk/bin/qrkiosk.js', 'relay', '--config', '/etc/qrkiosk/relay.yaml']);
      expect(Number(/^(\d+)s$/.exec(s.stop_grace_period!)![1])).toBeGreaterThan(c.observability.drainSeconds + 10);
      expect(s.ulimits!.nofile.soft).toBeGreaterThanOrEqual(50_000);
      expect(s.healthcheck).toBeDefined();
    }
    expect(doc.services.postgres!.ports).toBeUndefined();
    expect(doc.services.haproxy!.ports).toEqual(['80:80', '443:443']);
    expect(JSON.stringify(doc.services.postgres!.command)).not.toMatch(/synchronous_commit=off|fsync=off/);
  });

  it('qrkiosk-relay@.service passes systemd-analyze verify; it stops after the drain and holds many sockets', () => {
    const text = read('qrkiosk-relay@.service');
    const c = relayDefaults();
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(text)![1])).toBeGreaterThan(c.observability.drainSeconds + 10);
    expect(Number(/^LimitNOFILE=(\d+)$/m.exec(text)![1])).toBeGreaterThanOrEqual(50_000);
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/qrkiosk\/bin\/qrkiosk\.js relay --config \/etc\/qrkiosk\/relay-%i\.yaml$/m);

    if (skipWithout(has('systemd-analyze', ['--version']), 'systemd-analyze', 'systemd')) return;
    // in a root of its own, as test/systemd-units.test.ts does: the system's units and a stand-in node
    const { dir, cleanup } = tempDir('qrk-unit-');
    cleanups.push(cleanup);
    const systemUnits = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(d))!;
    cpSync(systemUnits, join(dir, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
    mkdirSync(join(dir, 'etc/systemd/system'), { recursive: true });
    writeFileSync(join(dir, 'etc/systemd/system/qrkiosk-relay@.service'), text);
    const node = join(dir, 'usr/bin/node');
    mkdirSync(dirname(node), { recursive: true });
    writeFileSync(node, '#!/bin/sh\n');
    chmodSync(node, 0o755);
    const r = spawnSync('systemd-analyze', ['verify', `--root=${dir}`, 'qrkiosk-relay@a.service'], { encoding: 'utf8' });
    expect(r.stderr.split('\n').filter((l) => /\.service(:\d+)?:/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });
});
