import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '../src/relay/console/passwords.js';
import { openRelayStore } from '../src/relay/store/index.js';

// `qrkiosk relay operator add|list|disable` through the real CLI process: the password comes on
// stdin (never an argument), is stored only as its scrypt hash, and a disabled account shows so.

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
let dir: string;
let configPath: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'qrkiosk-op-'));
  configPath = join(dir, 'relay.yaml');
  writeFileSync(configPath, `publicUrl: https://relay.example.com\nstore:\n  path: ${join(dir, 'relay.sqlite')}\nmercadopago:\n  collectorId: 123\ncatalog:\n  - {sku: COLA, name: Cola, price: "1500.00", currency: ARS}\n`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function cli(stdin: string, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, 'relay', ...args, '--config', configPath], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) => done({ code, out, err }));
    child.stdin.end(stdin);
  });
}

describe('qrkiosk relay operator', { timeout: 60_000 }, () => {
  it('adds with the password from stdin, lists, refuses bad input, disables', async () => {
    const add = await cli('a long enough secret\n', 'operator', 'add', 'Ana@Example.com', '--role', 'operator');
    expect(add).toMatchObject({ code: 0 });
    expect(add.out).toMatch(/operator ana@example.com added \(operator\)/);
    expect(await cli('short\n', 'operator', 'add', 'bob@example.com', '--role', 'viewer')).toMatchObject({ code: 2, err: expect.stringMatching(/too short/) });
    expect(await cli('a long enough secret\n', 'operator', 'add', 'bob@example.com', '--role', 'boss')).toMatchObject({ code: 2, err: expect.stringMatching(/--role must be one of viewer, operator, admin/) });
    expect(await cli('a long enough secret\n', 'operator', 'add', 'ana@example.com', '--role', 'admin')).toMatchObject({ code: 2, err: expect.stringMatching(/exists already/) });
    expect(await cli('', 'operator', 'disable', 'ana@example.com')).toMatchObject({ code: 0 });
    const list = await cli('', 'operator', 'list', '--json');
    expect(JSON.parse(list.out)).toMatchObject([{ email: 'ana@example.com', role: 'operator', disabledAt: expect.any(Number) }]);
    expect(list.out).not.toContain('scrypt');
    expect(await cli('', 'operator', 'disable', 'nobody@example.com')).toMatchObject({ code: 2, err: expect.stringMatching(/no operator nobody@example.com/) });
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    try {
      const op = (await store.getOperatorByEmail('ana@example.com'))!;
      expect(op.passwordHash).toMatch(/^scrypt\$/);
      expect(await verifyPassword('a long enough secret', op.passwordHash)).toBe(true);
    } finally {
      await store.close();
    }
  });
});
