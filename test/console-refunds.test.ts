import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, describe, expect, it } from 'vitest';
import { relayMain } from '../src/cli/relay-commands.js';
import type { Actor } from '../src/relay/console/actions.js';
import { orderTimeline } from '../src/relay/console/web/views.js';
import type { RelayConfig } from '../src/relay/config.js';
import { OPENAPI } from '../src/relay/routes/openapi.js';
import { KioskSystem, PRICES, type SystemOptions } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// Operator refunds against the Mercado Pago emulator (src/sandbox), the whole product running:
// partial refunds up to the order's amount (legacy payments API and Orders API), a refund the
// emulator refused retried as a NEW refund (two retries at once: one new attempt), and the same
// actions through the REST API (a key without the `refunds` scope reaches nothing) and the CLI
// (a separate process; the running relay picks the work up).

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
const ana: Actor = { operatorId: null, name: 'ana@example.com', role: 'operator' };
const bob: Actor = { operatorId: null, name: 'bob@example.com', role: 'operator' };
let sys: KioskSystem | undefined;

afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

/** A customer buys slot 1 (COLA, 1500.00 ARS) and the kiosk dispenses it. */
async function vended(s: KioskSystem): Promise<string> {
  const sel = await s.select(1);
  if (!sel.ok) throw new Error(`select refused: ${sel.reason}`);
  const scan = await s.customerScans(sel.orderId);
  await s.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
  await s.waitRelayState(sel.orderId!, 'vended');
  return sel.orderId!;
}

async function refundsAt(s: KioskSystem, orderId: string) {
  return (await s.sandbox.refunds()).filter((r) => r.externalReference === orderId);
}

/** Waits until the emulator holds `n` refunds of the order and the relay recorded each answer. */
async function refundsMade(s: KioskSystem, orderId: string, n: number) {
  await waitFor(`${n} refunds of ${orderId} at the emulator`, async () => (await refundsAt(s, orderId)).length === n);
  await waitFor(`the relay recorded the answers`, async () => ((await s.relay.store.refundsOf(orderId)).every((r) => r.status !== 'requested') ? true : undefined));
  await s.relay.whenIdle();
  return refundsAt(s, orderId);
}

/** The relay's YAML for the CLI: the same store as the running relay. */
function relayYaml(s: KioskSystem): string {
  const cfg = (s as unknown as { relayConfig: RelayConfig }).relayConfig;
  const file = join(s.dir, 'relay-cli.yaml');
  writeFileSync(file, JSON.stringify({ publicUrl: cfg.publicUrl, store: cfg.store, mercadopago: { collectorId: cfg.mercadopago.collectorId, accessToken: 'APP_USR-cli' }, catalog: cfg.catalog }));
  return file;
}

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, 'relay', ...args], { env: { ...process.env, QRKIOSK_LOG_LEVEL: 'warn' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) => done({ code, out, err }));
  });
}

const VARIANTS: Array<{ label: string; opts: SystemOptions }> = [
  { label: 'unattended (POST /v1/payments/{id}/refunds)', opts: {} },
  { label: 'orders/dynamic (POST /v1/orders/{id}/refund)', opts: { model: 'orders', modelMode: 'dynamic' } },
];

describe('partial refunds', { timeout: 120_000 }, () => {
  it.each(VARIANTS)('$label: parts up to the total, each once; the order stays vended until the rest is refunded; timeline and receipt page show each amount', async ({ opts }) => {
    sys = await KioskSystem.start(opts);
    await sys.startAgent();
    const orderId = await vended(sys);
    const actions = sys.relay.actions;
    expect(PRICES.COLA).toBe(150_000);

    // more than the order: refused before anything is written
    await expect(actions.refund(ana, orderId, 'too much', { amount: 150_001 })).rejects.toMatchObject({ status: 400 });
    await expect(actions.refund(ana, orderId, 'not money', { amount: 12.5 })).rejects.toMatchObject({ status: 400 });

    expect(await actions.refund(ana, orderId, 'warm can', { amount: 50_000 })).toMatchObject({ state: 'partial', amount: 50_000 });
    let made = await refundsMade(sys, orderId, 1);
    expect(made.map((r) => r.amountMinor)).toEqual([50_000]);
    expect((await sys.relay.store.getOrder(orderId))!.state).toBe('vended');

    expect(await actions.refund(bob, orderId, 'dented can', { amount: 30_000 })).toMatchObject({ state: 'partial', amount: 30_000 });
    made = await refundsMade(sys, orderId, 2);
    expect(made.map((r) => r.amountMinor)).toEqual([50_000, 30_000]);
    // 70000 left: more is refused, and nothing reaches the emulator
    await expect(actions.refund(ana, orderId, 'too much now', { amount: 70_001 })).rejects.toMatchObject({ status: 400 });

    // no amount: all that is left, and the order is refunded in full
    expect(await actions.refund(ana, orderId, 'customer unhappy')).toMatchObject({ state: 'refunding', amount: 70_000 });
    await sys.waitRelayState(orderId, 'refunded', 30_000);
    made = await refundsMade(sys, orderId, 3);
    expect(made.map((r) => r.amountMinor)).toEqual([50_000, 30_000, 70_000]);
    expect(made.every((r) => r.replays === 0)).toBe(true);
    expect(new Set(made.map((r) => r.idempotencyKey)).size).toBe(3);
    await expect(actions.refund(ana, orderId, 'again', { amount: 1 })).rejects.toMatchObject({ status: 409 });

    // the timeline: each operator action, each refund with its amount
    const timeline = await orderTimeline(sys.relay.store, (await sys.relay.store.getOrder(orderId))!);
    expect(timeline.filter((t) => t.source === 'operator').map((t) => `${t.step}:${t.who}`)).toEqual(['refund.partial:ana@example.com', 'refund.partial:bob@example.com', 'refunding:relay', 'refund:ana@example.com']);
    expect(timeline.filter((t) => t.step === 'refund approved').map((t) => t.detail)).toEqual(['50000 ARS', '30000 ARS', '70000 ARS']);

    // the customer's receipt page lists the three returned amounts
    const page = await fetch(`${sys.relay.url}${new URL(sys.relay.receiptUrl(orderId)).pathname}`, { headers: { 'accept-language': 'en' } });
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html.match(/Money returned: [^<]+/g)).toEqual([expect.stringContaining('500'), expect.stringContaining('300'), expect.stringContaining('700')]);
  });
});

describe('retrying a refused refund', { timeout: 120_000 }, () => {
  it('the emulator refuses a refund for good; a retry is a new refund with a new key, two retries at once make one; the full refund is retried through the CLI', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const orderId = await vended(sys);
    const actions = sys.relay.actions;

    await expect(actions.retryRefund(ana, orderId, 'nothing refused yet')).rejects.toMatchObject({ status: 409 });
    await sys.sandbox.setFault({ endpoint: 'refundPayment', status: 400, times: 1, body: { message: 'invalid payment state', error: 'bad_request', status: 400, cause: [{ code: 2063, description: 'The action requested is not valid for the current payment state' }] } });
    await actions.refund(ana, orderId, 'warm can', { amount: 40_000 });
    const refused = await waitFor('the partial refund refused', async () => (await sys!.relay.store.refundsOf(orderId)).find((r) => r.status === 'failed'));
    expect(refused).toMatchObject({ reason: 'partial', requestedAmount: 40_000 });
    expect((await sys.relay.store.getOrder(orderId))!).toMatchObject({ state: 'vended', needsReview: expect.stringContaining('refused by Mercado Pago') });
    expect(await refundsAt(sys, orderId)).toEqual([]);
    // still counts as not refunded: the whole order could be refunded now (not done: it is retried below)

    // two operators retry at once: one new attempt, the other is told it was retried already
    const both = await Promise.allSettled([actions.retryRefund(ana, orderId, 'MP fixed the payment'), actions.retryRefund(bob, orderId, 'me too')]);
    expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(both.find((r) => r.status === 'rejected')).toMatchObject({ reason: { status: 409 } });
    const made = await refundsMade(sys, orderId, 1);
    expect(made[0]).toMatchObject({ amountMinor: 40_000, replays: 0 });
    expect(made[0]!.idempotencyKey).not.toBe(refused.idempotencyKey);
    const rows = await sys.relay.store.refundsOf(orderId);
    expect(rows.map((r) => `${r.reason}:${r.status}:${r.requestedAmount}`)).toEqual(['partial:failed:40000', 'partial:approved:40000']);
    // its last attempt succeeded: nothing to retry
    await expect(actions.retryRefund(ana, orderId, 'again')).rejects.toMatchObject({ status: 409 });
    expect((await sys.relay.store.operatorAuditOf(orderId)).map((a) => `${a.action}:${a.actor}`)).toEqual(['refund.partial:ana@example.com', expect.stringMatching(/^refund\.retried:(ana|bob)@example\.com$/)]);

    // the rest, refused too; then retried from the shell: the running relay asks the emulator
    const config = relayYaml(sys);
    await sys.sandbox.setFault({ endpoint: 'refundPayment', status: 400, times: 1 });
    const full = await cli('refund', orderId, '--reason', 'customer unhappy', '--by', 'carl', '--config', config);
    expect(full.code, full.err).toBe(0);
    expect(full.out).toMatch(/refund of 110000 ARS by cli:carl/);
    await waitFor('the rest refused', async () => (await sys!.relay.store.refundsOf(orderId)).filter((r) => r.status === 'failed').length === 2, 30_000);
    expect((await sys.relay.store.getOrder(orderId))!.state).toBe('refunding');
    const noReason = await cli('refund', 'retry', orderId, '--config', config);
    expect(noReason.code).not.toBe(0);
    expect(noReason.err).toMatch(/say why/);
    const retry = await cli('refund', 'retry', orderId, '--reason', 'MP says try again', '--by', 'carl', '--config', config);
    expect(retry.code, retry.err).toBe(0);
    await sys.waitRelayState(orderId, 'refunded', 30_000);
    const all = await refundsMade(sys, orderId, 2);
    expect(all.map((r) => r.amountMinor)).toEqual([40_000, 110_000]);
    expect((await sys.relay.store.operatorAuditOf(orderId)).slice(2).map((a) => `${a.action}:${a.actor}`)).toEqual(['refund:cli:carl', 'refund.retried:cli:carl']);
  });
});

describe('refunds through the REST API', { timeout: 120_000 }, () => {
  it('a key without the refunds scope is refused and nothing reaches the emulator; with it the refund reaches the emulator once, a repeated request answers the first', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const orderId = await vended(sys);
    const config = relayYaml(sys);
    const key = async (name: string, scopes: string) => {
      const out: string[] = [];
      const err: string[] = [];
      expect(await relayMain(['apikey', 'add', name, '--scopes', scopes, '--config', config], { out: (l) => out.push(l), err: (l) => err.push(l) }), err.join()).toBe(0);
      return /(qrk_\S+)/.exec(out[0]!)![1]!;
    };
    const reader = await key('bi', 'orders,sales');
    const accounting = await key('accounting', 'refunds,orders');
    const post = async (k: string, body: object, idem?: string) => {
      const res = await fetch(`${sys!.relay.url}/api/v1/orders/${orderId}/refunds`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${k}`, ...(idem ? { 'idempotency-key': idem } : {}) }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const ajv = new Ajv2020({ strict: true, strictRequired: true });
    ajv.addKeyword('x-scope');
    ajv.addKeyword('components');
    ajv.addSchema({ $id: 'openapi', components: OPENAPI.components } as object);
    const accepted = ajv.compile({ $ref: 'openapi#/components/schemas/RefundAccepted' });

    const refused = await post(reader, { reason: 'not mine to do', amount: 10_000 });
    expect(refused.status).toBe(403);
    expect(await sys.relay.store.refundsOf(orderId)).toEqual([]);
    expect(await sys.relay.store.operatorAuditOf(orderId)).toEqual([]);

    const first = await post(accounting, { reason: 'goodwill', amount: 10_000 }, 'erp-credit-note-77');
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(accepted(first.body), JSON.stringify(accepted.errors)).toBe(true);
    expect(first.body).toMatchObject({ state: 'partial', amount: 10_000, currency: 'ARS', order: { id: orderId, state: 'vended' } });
    // the integration lost the answer and asks again with the same key: the first answer, no second refund
    const again = await post(accounting, { reason: 'goodwill', amount: 10_000 }, 'erp-credit-note-77');
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ state: 'partial', amount: 10_000 });
    const made = await refundsMade(sys, orderId, 1);
    expect(made[0]).toMatchObject({ amountMinor: 10_000, replays: 0 });
    expect((await sys.relay.store.operatorAuditOf(orderId)).map((a) => `${a.action}:${a.actor}`)).toEqual(['refund.partial:api:accounting']);

    // the order's refunds through the API
    const res = await fetch(`${sys.relay.url}/api/v1/orders/${orderId}`, { headers: { authorization: `Bearer ${reader}` } });
    const body = (await res.json()) as { refunds: Array<{ reason: string; status: string; requestedAmount: number; amount: number }> };
    expect(body.refunds).toEqual([expect.objectContaining({ reason: 'partial', status: 'approved', requestedAmount: 10_000, amount: 10_000 })]);
  });
});

/** The data of every QR symbol stored in ESC/POS bytes (GS ( k pL pH 0x31 0x50 0x30 data). */
function qrPayloads(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let i = bytes.indexOf(Buffer.from([0x1d, 0x28, 0x6b])); i >= 0; i = bytes.indexOf(Buffer.from([0x1d, 0x28, 0x6b]), i + 1)) {
    const len = bytes[i + 3]! + bytes[i + 4]! * 256;
    if (bytes[i + 5] === 0x31 && bytes[i + 6] === 0x50 && bytes[i + 7] === 0x30) out.push(bytes.subarray(i + 8, i + 5 + len).toString('utf8'));
  }
  return out;
}

describe('the printed receipt', { timeout: 120_000 }, () => {
  it("its QR opens the customer's receipt page: the relay sends the link with order.paid, the agent prints it on the ESC/POS printer", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qrk-receipt-'));
    const lp0 = join(dir, 'lp0');
    writeFileSync(lp0, ''); // the stand-in for /dev/usb/lp0, as a plugged printer
    try {
      sys = await KioskSystem.start({
        hardwareYaml: [
          '  buttons: { driver: none }',
          '  display: { driver: log }',
          `  dispenser: { driver: sim, pulseMs: 60, dropWindowMs: 400, maxPulses: 2, sim: { fault: none, dropDelayMs: 30, pulseLog: ${join(dir, 'pulses.jsonl')} } }`,
          `  printer: { path: ${lp0}, transport: file, header: [Kiosco Test] }`,
        ].join('\n'),
      });
      await sys.startAgent();
      const orderId = await vended(sys);
      const link = sys.relay.receiptUrl(orderId);
      expect(link).toMatch(new RegExp(`^https?://.+/r/${orderId}\\.[A-Za-z0-9_-]{22}$`));
      const printed = await waitFor('the receipt printed with its QR', () => {
        const qrs = qrPayloads(readFileSync(lp0));
        return qrs.length > 0 ? qrs : undefined;
      });
      expect(printed).toEqual([link]);
      // the link opens the page of this purchase on the relay
      const page = await fetch(`${sys.relay.url}${new URL(link).pathname}`, { headers: { 'accept-language': 'en' } });
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('Product delivered');
      expect(html).toContain(orderId);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
