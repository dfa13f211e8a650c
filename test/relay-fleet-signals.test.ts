import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { decodeSignal, encodeSignal, LocalSignals, PgSignals, SIGNAL_CHANNEL, type KioskSignal } from '../src/relay/fleet/signals.js';
import { silentLogger } from '../src/runtime/log.js';
import { waitFor } from './helpers/wait.js';

// The signals between relay instances, on the machine's real PostgreSQL (a missing server fails the
// test: it is never skipped). A signal is a hint to look at the store; what matters is that it is
// delivered only for committed work and that a lost listening connection is noticed (resync).

const PG_URL = process.env.QRKIOSK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  open.push({ close: () => c.end() });
  return c;
}

function collect(s: PgSignals | LocalSignals): KioskSignal[] {
  const got: KioskSignal[] = [];
  s.on('signal', (x) => got.push(x));
  return got;
}

describe('signal payloads', () => {
  it('round-trips every kind and refuses anything else', () => {
    for (const kind of ['outbox', 'presence', 'revoked'] as const) {
      expect(decodeSignal(encodeSignal({ kind, kioskId: 'k:1' }))).toEqual({ kind, kioskId: 'k:1' });
    }
    expect(decodeSignal('other:k1')).toBeUndefined();
    expect(decodeSignal('outbox:')).toBeUndefined();
    expect(decodeSignal('outbox')).toBeUndefined();
  });
});

describe('LocalSignals', () => {
  it('delivers in-process', async () => {
    const s = new LocalSignals();
    const got = collect(s);
    await s.send({ kind: 'outbox', kioskId: 'k1' });
    expect(got).toEqual([{ kind: 'outbox', kioskId: 'k1' }]);
  });
});

describe('PgSignals on PostgreSQL', () => {
  it('delivers a NOTIFY only when its transaction commits', async () => {
    const s = await PgSignals.start({ url: PG_URL, logger: silentLogger() });
    open.push(s);
    const got = collect(s);
    const c = await client();
    await c.query('BEGIN');
    await c.query('SELECT pg_notify($1, $2)', [SIGNAL_CHANNEL, 'outbox:rolled-back']);
    await c.query('ROLLBACK');
    await c.query('BEGIN');
    await c.query('SELECT pg_notify($1, $2)', [SIGNAL_CHANNEL, 'outbox:committed']);
    await c.query('COMMIT');
    await waitFor('the committed signal', () => got.find((x) => x.kioskId === 'committed'));
    // NOTIFYs from one session arrive in commit order: the committed one came after the rollback,
    // so had the rolled-back one been delivered it would already be here.
    expect(got.map((x) => x.kioskId)).toEqual(['committed']);
  });

  it('send() reaches another instance', async () => {
    const a = await PgSignals.start({ url: PG_URL, logger: silentLogger() });
    const b = await PgSignals.start({ url: PG_URL, logger: silentLogger() });
    open.push(a, b);
    const got = collect(b);
    await a.send({ kind: 'presence', kioskId: 'k7' });
    await waitFor('the presence signal at b', () => got.find((x) => x.kioskId === 'k7'));
    expect(got).toContainEqual({ kind: 'presence', kioskId: 'k7' });
  });

  it('reconnects after its connection is killed, says resync, and hears later signals', async () => {
    const name = `qrkiosk-signals-test-${process.pid}-${Date.now()}`;
    const s = await PgSignals.start({ url: PG_URL, logger: silentLogger(), reconnectBaseMs: 20, reconnectCapMs: 200, applicationName: name });
    open.push(s);
    const got = collect(s);
    let resyncs = 0;
    s.on('resync', () => resyncs++);
    const admin = await client();
    const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [name]);
    expect(killed.rowCount).toBeGreaterThanOrEqual(1);
    await waitFor('a resync after the reconnect', () => resyncs >= 1, 20_000);
    expect(s.listening).toBe(true);
    await admin.query('SELECT pg_notify($1, $2)', [SIGNAL_CHANNEL, 'outbox:after']);
    await waitFor('the signal sent after the reconnect', () => got.find((x) => x.kioskId === 'after'));
  });
});
