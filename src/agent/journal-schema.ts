import type { Migration } from '../runtime/sqlite.js';

// The journal's schema, one step per release that changed it. Steps are appended, never edited.
// Mark a step `additive` only when code from before it still works on the migrated file (a new
// table, a new nullable column nobody older reads): then rolling an update back (qrkiosk update)
// leaves a journal the older agent opens. Anything else makes older agents refuse it, by design.

export const JOURNAL_MIGRATIONS: Migration[] = [
  {
    additive: false,
    sql:  `
  CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    slot        INTEGER NOT NULL,
    sku         TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    state       TEXT NOT NULL,
    deadline    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    payment_id  TEXT,
    result      TEXT,
    pulses      INTEGER,
    relay_amount INTEGER,
    qr          TEXT
  );
  CREATE INDEX orders_state ON orders(state);
  CREATE TABLE steps (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders(id),
    state    TEXT NOT NULL,
    at       INTEGER NOT NULL,
    detail   TEXT
  );
  CREATE INDEX steps_order ON steps(order_id, seq);
  -- append-only: the steps are the audit trail a refund dispute is settled with
  CREATE TRIGGER steps_no_update BEFORE UPDATE ON steps BEGIN SELECT RAISE(ABORT, 'steps are append-only'); END;
  CREATE TRIGGER steps_no_delete BEFORE DELETE ON steps BEGIN SELECT RAISE(ABORT, 'steps are append-only'); END;
  CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE inbox (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE TABLE stock (
    slot  INTEGER PRIMARY KEY,
    count INTEGER NOT NULL CHECK (count >= 0),
    -- the config value last applied; a different value in the config means "refilled"
    configured INTEGER NOT NULL
  );
  CREATE TABLE kv (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  },
  {
    // 2: a technician's verdict on a vend nobody could see (qrkiosk resolve): who, when, what
    additive: true,
    sql: `
  ALTER TABLE orders ADD COLUMN resolution TEXT;
  ALTER TABLE orders ADD COLUMN resolved_by TEXT;
  ALTER TABLE orders ADD COLUMN resolved_at INTEGER;
  `,
  },
  {
    // 3: the relay's signed commands this kiosk verified (docs/console-kiosk.md). A command id in
    // here is never applied again: a replayed frame is refused, also after a restart.
    additive: true,
    sql: `
  CREATE TABLE commands (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    issued_by   TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    -- core/kiosk-command.ts (kioskSideCommand): running, applied, refused
    state       TEXT NOT NULL,
    finished_at INTEGER,
    reason      TEXT,
    message     TEXT,
    result      TEXT,
    -- the signed payload as received: what exactly the relay asked
    payload     TEXT NOT NULL
  );
  `,
  },
  {
    // 4: the receipt page link the relay sent with order.paid, printed as the receipt's QR
    additive: true,
    sql: `
  ALTER TABLE orders ADD COLUMN receipt_url TEXT;
  `,
  },
];
