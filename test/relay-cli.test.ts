import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { relayMain } from '../src/cli/relay-commands.js';
import { hashToken, openRelayStore } from '../src/relay/store/index.js';

let dir: string;
let configPath: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'qrkiosk-cli-'));
  configPath = join(dir, 'relay.yaml');
  writeFileSync(
    configPath,
    `publicUrl: https://relay.example.com
store:
  path: ${join(dir, 'relay.sqlite')}
mercadopago:
  collectorId: 123
catalog:
  - {sku: COLA, name: Cola, price: "1500.00", currency: ARS}
`,
  );
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await relayMain(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n'), errLines: err };
}

describe('qrkiosk relay kiosk ...', () => {
  it('a new kiosk gets the Orders API dynamic QR where the site has it; --model and set-model are checked against the site', async () => {
    const add = await run('kiosk', 'add', 'k2', '--config', configPath, '--pos', 'POS2');
    expect(add.code).toBe(0);
    expect(add.out).toMatch(/payment model orders\/dynamic/);
    expect(add.out).not.toMatch(/POS url to register/);
    const bad = await run('kiosk', 'add', 'k3', '--config', configPath, '--pos', 'POS3', '--model', 'orders/sticker');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown mode "sticker" for the orders model: write one of orders\/dynamic, orders\/static, orders\/hybrid/);
    const attended = await run('kiosk', 'set-model', 'k2', 'attended/mpmobile', '--config', configPath);
    expect(attended.code).toBe(0);
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    expect(await store.getKiosk('k2')).toMatchObject({ paymentModel: 'attended', modelMode: 'mpmobile' });
    await store.close();
    const unknown = await run('kiosk', 'set-model', 'k2', 'cash', '--config', configPath);
    expect(unknown.err).toMatch(/unknown payment model "cash"/);
  });

  it('add prints the token once with a warning and the POS url; list and set-qr work', async () => {
    const add = await run('kiosk', 'add', 'k1', '--config', configPath, '--pos', 'POS1', '--model', 'unattended', '--generation', 'v1');
    expect(add.code).toBe(0);
    const token = /token: (qk_\S+)/.exec(add.out)![1]!;
    expect(add.out).toMatch(/shown ONCE and cannot be shown again/);
    expect(add.out).toMatch(/POS url to register at Mercado Pago \(\d+ characters\): https:\/\/relay\.example\.com\/mp\/pos\/POS1\?key=[A-Za-z0-9_-]{32}/);
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    expect(await store.getKioskByTokenHash(hashToken(token))).toMatchObject({ id: 'k1', generation: 'v1' });
    await store.close();

    expect((await run('kiosk', 'set-qr', 'k1', '00020101021143', '--config', configPath)).code).toBe(0);
    const list = await run('kiosk', 'list', '--config', configPath, '--json');
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.out) as Record<string, unknown>[];
    expect(rows).toEqual([expect.objectContaining({ id: 'k1', posExternalId: 'POS1', generation: 'v1', posQr: '00020101021143' })]);
    expect(list.out).not.toContain(token);
    const human = await run('kiosk', 'list', '--config', configPath);
    expect(human.out).toMatch(/^k1 {2}pos=POS1 {2}unattended v1 {2}qr=set/);

    const rotated = await run('kiosk', 'rotate-token', 'k1', '--config', configPath);
    expect(rotated.code).toBe(0);
    expect(rotated.out).not.toContain(token);
  });

  it('fails with one clear line and exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['kiosk', 'add', 'k1', '--pos', 'POS1'], /--config FILE is required/],
      [['kiosk', 'add', 'k1', '--config', configPath], /--pos <externalId> is required/],
      [['kiosk', 'add', 'k1', '--config', configPath, '--pos', 'POS1', '--generation', 'v3'], /--generation must be v1 or v2/],
      [['kiosk', 'add', 'k1', '--config', join(dir, 'missing.yaml'), '--pos', 'POS1'], /cannot read config file/],
      [['kiosk', 'add', 'k1', '--config', configPath, '--pos', 'POS-1'], /letters and digits only/],
      [['kiosk', 'set-qr', 'nope', 'x', '--config', configPath], /no kiosk "nope"/],
      [['kiosk', 'frobnicate'], /unknown kiosk command/],
      [['--bogus'], /Unknown option/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.errLines, argv.join(' ')).toHaveLength(1);
      expect(r.err).toMatch(re);
    }
  });

  it('runs the relay without an access token only to report it missing', async () => {
    const saved = process.env.QRKIOSK_MP_ACCESS_TOKEN;
    delete process.env.QRKIOSK_MP_ACCESS_TOKEN;
    try {
      const r = await run('--config', configPath);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/mercadopago\.accessToken.*QRKIOSK_MP_ACCESS_TOKEN/);
    } finally {
      if (saved !== undefined) process.env.QRKIOSK_MP_ACCESS_TOKEN = saved;
    }
  });
});

describe('qrkiosk relay --config FILE', () => {
  it('serves until SIGTERM, then closes gracefully with exit code 0', async () => {
    // drainSeconds 0: nothing balances this relay (test/relay-observability.test.ts covers the drain)
    writeFileSync(configPath, `listen: {host: 127.0.0.1, port: 0}\nobservability: {drainSeconds: 0}\n${readFileSync(configPath, 'utf8')}`);
    const script = join(dir, 'run.mts');
    const entry = resolve('src/cli/relay-commands.ts');
    writeFileSync(script, `import { relayMain } from ${JSON.stringify(entry)};\nprocess.exitCode = await relayMain(process.argv.slice(2));\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', script, '--config', configPath], {
      env: { ...process.env, QRKIOSK_MP_ACCESS_TOKEN: 'TEST-not-used', QRKIOSK_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const url = await new Promise<string>((resolveUrl, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += String(d);
        const m = /relay listening on (http:\/\/\S+);/.exec(stderr);
        if (m) resolveUrl(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`relay exited early (${code}): ${stderr}`)));
    });
    const health = await fetch(`${url}/healthz`);
    expect(await health.json()).toMatchObject({ ok: true, kiosksOnline: 0, pendingOrders: 0, needsReview: 0, notificationsGivenUp: 0, store: { ok: true } });
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number];
    expect(code).toBe(0);
    expect(stderr).toMatch(/SIGTERM: stopping the relay/);
  }, 20_000);
});
