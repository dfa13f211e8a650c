import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Journal } from '../src/agent/journal.js';
import { JOURNAL_MIGRATIONS } from '../src/agent/journal-schema.js';
import { SchemaTooNew, openDatabase } from '../src/runtime/sqlite.js';

// The journal's schema moves forward with each release; after an update is rolled back the older
// agent must still open the file the newer one migrated, unless a step says it cannot.

const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `j${++n}.sqlite`);

describe('journal schema', () => {
  it('migrates a journal of the first release forward, keeping its orders', () => {
    const path = file();
    const first = openDatabase(path, { migrations: JOURNAL_MIGRATIONS.slice(0, 1) });
    first.prepare(`INSERT INTO orders (id, slot, sku, amount, currency, state, deadline, created_at, updated_at) VALUES ('ord_aaaaaaaa', 1, 'COLA', 100, 'ARS', 'vend_unknown', 0, 0, 0)`).run();
    first.close();
    const j = new Journal(path);
    expect(j.db.pragma('user_version', { simple: true })).toBe(JOURNAL_MIGRATIONS.length);
    expect(j.getOrder('ord_aaaaaaaa')).toMatchObject({ state: 'vend_unknown', resolution: null, resolvedBy: null });
    j.close();
  });

  it('an older agent opens a journal a newer one migrated by additive steps, and keeps working in it', () => {
    const path = file();
    const newer = openDatabase(path, { migrations: [...JOURNAL_MIGRATIONS, { sql: 'ALTER TABLE orders ADD COLUMN coupon TEXT', additive: true }] });
    newer.close();
    const older = new Journal(path);
    expect(older.db.pragma('user_version', { simple: true })).toBe(JOURNAL_MIGRATIONS.length + 1);
    older.createOrder({ id: 'ord_bbbbbbbb', slot: 1, sku: 'COLA', amount: 100, currency: 'ARS', deadline: Date.now() + 60_000 });
    expect(older.openOrders().map((o) => o.id)).toEqual(['ord_bbbbbbbb']);
    older.close();
  });

  it('an older agent refuses a journal changed in a way it cannot read, saying what to do', () => {
    const path = file();
    openDatabase(path, { migrations: [...JOURNAL_MIGRATIONS, { sql: 'ALTER TABLE orders RENAME COLUMN qr TO payment_qr', additive: false }] }).close();
    expect(() => new Journal(path)).toThrow(SchemaTooNew);
    const n = JOURNAL_MIGRATIONS.length;
    expect(() => new Journal(path)).toThrow(new RegExp(`needs code that knows schema ${n + 1} or more; this program knows ${n}: run the newer release again`));
    // nothing was changed by the refusal
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(n + 1);
    db.close();
  });
});
