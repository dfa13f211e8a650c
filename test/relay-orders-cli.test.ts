import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { relayMain } from '../src/cli/relay-commands.js';
import { KioskSystem, PRICES } from './helpers/system.js';

// What an operator runs when a customer calls: the order, its history, its payment and refund.

let sys: KioskSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await relayMain(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('qrkiosk relay orders / order', () => {
  it('shows a failed vend with its refund', async () => {
    sys = await KioskSystem.start({ fault: 'no_drop' });
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await sys.waitRelayState(orderId!, 'refunded');

    const cfg = join(sys.dir, 'relay.yaml');
    writeFileSync(
      cfg,
      `publicUrl: http://127.0.0.1:1\nstore: { path: ${join(sys.dir, 'relay.sqlite')} }\nmercadopago: { collectorId: 1 }\ncatalog:\n  - { sku: COLA, name: Cola, price: "1500.00", currency: ARS }\n`,
    );
    const list = await run(['orders', '--config', cfg]);
    expect(list.code).toBe(0);
    expect(list.out).toContain(orderId);
    expect(list.out).toMatch(/\$ 1\.500,00\s+refunded/);

    const json = await run(['orders', '--config', cfg, '--state', 'refunded', '--json']);
    const rows = JSON.parse(json.out) as Array<{ id: string; amount: number }>;
    expect(rows.map((r) => [r.id, r.amount])).toEqual([[orderId, PRICES.COLA]]);

    const one = await run(['order', orderId!, '--config', cfg]);
    expect(one.out).toMatch(/pending -> paid\s+\(payment_verified\)/);
    expect(one.out).toMatch(/paid -> refunding\s+\(vend_failed\)/);
    expect(one.out).toMatch(/refunding -> refunded/);
    expect(one.out).toContain(String(paid.paymentId));

    expect((await run(['orders', '--config', cfg, '--state', 'bogus'])).err).toMatch(/--state must be one of pending, paid/);
    expect((await run(['order', 'ord_nope000', '--config', cfg])).err).toMatch(/no order "ord_nope000"/);
    expect((await run(['orders', '--config', cfg, '--review'])).out).toBe('no orders need review');
  });
});
