import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// `npm start` on a machine with no keyboard: the demo sells by itself, prints each step, exits 0.
describe('qrkiosk demo', () => {
  it.each([
    { args: [], model: 'orders/dynamic' },
    { args: ['--model', 'attended/mpmobile'], model: 'attended/mpmobile' },
  ])('sells by itself without a TTY and exits 0 ($model)', async ({ args, model }) => {
    const child = spawn(process.execPath, ['bin/qrkiosk.js', 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, out).toBe(0);
    expect(out).toMatch(/Mercado Pago sandbox\s+http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toMatch(/relay\s+http:\/\/127\.0\.0\.1:\d+/);
    expect(out.match(/DISPENSED/g)).toHaveLength(3);
    expect(out).toMatch(/VEND_FAILED .* the relay refunds/);
    expect(out).toMatch(/Mercado Pago refunded payment \S+: \$ 1\.200,00/);
    expect(out).toMatch(/button 4: refused \(out_of_stock/);
    expect(out).not.toMatch(/UNEXPECTED|demo failed/);
    expect(out).toContain(`payment model ${model}`);
  }, 60_000);

  it('refuses an unknown model, listing the ones there are', async () => {
    const child = spawn(process.execPath, ['bin/qrkiosk.js', 'demo', '--model', 'cash'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(out).toMatch(/unknown payment model "cash"/);
    expect(out).toMatch(/orders\/dynamic\|static\|hybrid/);
  });
});
