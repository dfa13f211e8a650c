import net from 'node:net';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { ControlServer, controlRequest, resolveGid } from '../src/agent/control.js';
import { agentMain, technicianMain, type Io } from '../src/cli/agent-commands.js';
import { SimButtons } from '../src/devices/buttons.js';
import { NullDisplay } from '../src/devices/display.js';
import { SimDispenser } from '../src/devices/dispenser.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, agentConfig, nextEvent, tempDir } from './agent-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function io(): Io & { stdout: string; stderr: string } {
  const o = {
    stdout: '',
    stderr: '',
    out: (t: string) => {
      o.stdout += t + '\n';
    },
    err: (t: string) => {
      o.stderr += t + '\n';
    },
  };
  return o;
}

async function setup(over: Record<string, unknown> = {}): Promise<{ relay: FakeRelay; agent: Agent; sock: string; dir: string }> {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-ctl-');
  cleanups.push(cleanup);
  const cfg = agentConfig(dir, relay.url, over);
  // keep the socket in the temp dir whatever the override says
  (cfg as { control: Record<string, unknown> }).control = { ...(cfg as { control: object }).control, socket: join(dir, 'agent.sock') };
  const agent = await startAgent(cfg, {
    logger: silentLogger(),
    display: new NullDisplay(),
    buttons: new SimButtons(),
    dispenser: new SimDispenser({ pulseMs: 10, dropWindowMs: 50, maxPulses: 2, fault: 'none', dropDelayMs: 5, slowDropMs: 100 }),
    timings: { resultScreenMs: 50, offlineGraceMs: 50 },
  });
  cleanups.push(() => agent.close());
  if (!agent.status().relay.online) await nextEvent<string>(agent as never, 'link', (s) => s === 'online');
  return { relay, agent, sock: join(dir, 'agent.sock'), dir };
}

describe('control socket and technician commands', () => {
  it('the socket is mode 0660 and in the configured group', async () => {
    const gid = process.getgid!();
    const { sock } = await setup({ control: { group: gid } });
    const st = statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(gid);
  });

  it('status, select, cancel and journal work with --json', async () => {
    const { relay, sock } = await setup();
    let o = io();
    expect(await technicianMain('status', ['--socket', sock, '--json'], o)).toBe(0);
    const status = JSON.parse(o.stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ kioskId: 'kiosk-test', state: 'idle', relay: { online: true }, controlSocket: sock });
    expect(status.stock).toContainEqual(expect.objectContaining({ slot: 1, sku: 'COLA', count: 5, price: 150000 }));

    o = io();
    expect(await technicianMain('select', ['1', '--socket', sock, '--json'], o)).toBe(0);
    const sel = JSON.parse(o.stdout) as { ok: boolean; orderId: string; amount: number };
    expect(sel).toMatchObject({ ok: true, amount: 150000 });
    await relay.waitType('order.ready', (m) => m.orderId === sel.orderId);

    o = io();
    expect(await technicianMain('select', ['1', '--socket', sock, '--json'], o)).toBe(1);
    expect(JSON.parse(o.stdout)).toMatchObject({ ok: false, reason: 'busy' });

    o = io();
    expect(await technicianMain('cancel', ['--socket', sock, '--json'], o)).toBe(0);
    expect(JSON.parse(o.stdout)).toEqual({ ok: true, orderId: sel.orderId });
    expect((await relay.waitType('order.cancel')).msg).toMatchObject({ orderId: sel.orderId, reason: 'technician' });

    o = io();
    expect(await technicianMain('journal', ['--limit', '5', '--socket', sock, '--json'], o)).toBe(0);
    const j = JSON.parse(o.stdout) as Array<{ id: string; state: string; steps: Array<{ state: string }> }>;
    expect(j).toHaveLength(1);
    expect(j[0]).toMatchObject({ id: sel.orderId, state: 'cancelled' });
    expect(j[0]!.steps.map((s) => s.state)).toEqual(['awaiting_payment', 'cancelled']);
  });

  it('human output is a readable table; --config finds the socket', async () => {
    const { sock, dir } = await setup();
    const cfgFile = join(dir, 'agent.yaml');
    writeFileSync(
      cfgFile,
      `kioskId: kiosk-test\nrelay: { url: 'ws://127.0.0.1:1/v1/kiosk', tokenFile: no-such-file }\ncontrol: { socket: ${sock} }\nslots: [{ slot: 1, sku: COLA, stock: 1 }]\n`,
    );
    let o = io();
    expect(await technicianMain('select', ['1', '--config', cfgFile], o)).toBe(0);
    expect(o.stdout).toMatch(/^order ord_\S+: slot 1 Cola 350ml \$ 1\.500,00, payable until /);
    o = io();
    expect(await technicianMain('status', ['--config', cfgFile], o)).toBe(0);
    expect(o.stdout).toContain('kiosk    kiosk-test');
    expect(o.stdout).toContain('state    awaiting_payment');
    expect(o.stdout).toMatch(/SLOT\s+SKU\s+PRODUCT\s+PRICE\s+STOCK/);
    expect(o.stdout).toMatch(/1\s+COLA\s+Cola 350ml\s+\$ 1\.500,00\s+5/);
    o = io();
    expect(await technicianMain('journal', ['--socket', sock], o)).toBe(0);
    expect(o.stdout).toMatch(/ORDER\s+SLOT\s+SKU\s+AMOUNT\s+STATE/);
    expect(o.stdout).toContain('awaiting_payment');
    o = io();
    expect(await technicianMain('cancel', ['--socket', sock], o)).toBe(0);
    expect(o.stdout).toMatch(/order ord_\S+ cancelled/);
    o = io();
    expect(await technicianMain('cancel', ['--socket', sock], o)).toBe(1);
    expect(o.stdout).toContain('nothing cancelled (no_open_order)');
  });

  it('no agent: "agent not running? no control socket at PATH", exit 2; usage errors exit 2', async () => {
    const { dir, cleanup } = tempDir('qrk-none-');
    cleanups.push(cleanup);
    const path = join(dir, 'nope.sock');
    const o = io();
    expect(await technicianMain('status', ['--socket', path], o)).toBe(2);
    expect(o.stderr.trim()).toBe(`agent not running? no control socket at ${path}`);
    expect(await technicianMain('select', ['x', '--socket', path], io())).toBe(2);
    expect(await technicianMain('journal', ['--limit', '0', '--socket', path], io())).toBe(2);
  });

  it('agentMain with a bad config prints the key and exits 2 without starting', async () => {
    const { dir, cleanup } = tempDir('qrk-bad-');
    cleanups.push(cleanup);
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, `kioskId: k1\nrelay: { url: 'http://x/kiosk', token: abcdefghijkl }\nslots: [{ slot: 1, sku: A, stock: 1 }]\n`);
    const o = io();
    expect(await agentMain(['--config', file], o)).toBe(2);
    expect(o.stderr).toContain(`${file}:2: key "relay.url"`);
    expect(await agentMain([], io())).toBe(2);
  });

  it('refuses to start a second agent on the same socket; replaces a stale one; answers bad requests', async () => {
    const { sock, dir } = await setup();
    await expect(
      ControlServer.start({ path: sock, handler: () => 1, logger: silentLogger() }),
    ).rejects.toThrow(/another agent is already listening/);
    writeFileSync(join(dir, 'plain'), 'x');
    await expect(ControlServer.start({ path: join(dir, 'plain'), handler: () => 1, logger: silentLogger() })).rejects.toThrow(/not a socket/);

    // a raw client: bad JSON, unknown command, then a good one on the same connection
    const answers = await new Promise<string[]>((resolve) => {
      const c = net.connect(sock);
      let buf = '';
      c.on('data', (d) => {
        buf += d.toString();
        const lines = buf.split('\n').filter(Boolean);
        if (lines.length === 3) {
          c.end();
          resolve(lines);
        }
      });
      c.write('nonsense\n{"cmd":"reboot"}\n{"id":7,"cmd":"status"}\n');
    });
    expect(JSON.parse(answers[0]!)).toMatchObject({ ok: false, error: expect.stringContaining('not JSON') });
    expect(JSON.parse(answers[1]!)).toMatchObject({ ok: false, error: expect.stringContaining('commands: status, select, cancel, journal') });
    expect(JSON.parse(answers[2]!)).toMatchObject({ id: 7, ok: true, result: { kioskId: 'kiosk-test' } });
    await expect(controlRequest(sock, 'select', { slot: 'x' })).rejects.toThrow(/needs a slot number/);
  });

  it('resolveGid reads names from the group file and accepts numbers', () => {
    const { dir, cleanup } = tempDir('qrk-grp-');
    cleanups.push(cleanup);
    const file = join(dir, 'group');
    writeFileSync(file, 'root:x:0:\nqrkiosk:x:1234:pi,tech\n');
    expect(resolveGid('qrkiosk', file)).toBe(1234);
    expect(resolveGid(55, file)).toBe(55);
    expect(resolveGid('77', file)).toBe(77);
    expect(() => resolveGid('nobody-here', file)).toThrow(/no group "nobody-here"/);
  });
});
