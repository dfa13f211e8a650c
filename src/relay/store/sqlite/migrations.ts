// The relay's SQLite schema, one entry per version (runtime/sqlite.ts applies the ones a file has
// not seen, in order, at open). Never edit a step that has shipped: add the next one, and write
// what it changes in ../SCHEMA-CHANGES.md so the PostgreSQL schema (../postgres/) follows.

import type { Migration } from '../../../runtime/sqlite.js';

export const MIGRATIONS: readonly (string | Migration)[] = [
  // 1: initial schema
  `
  CREATE TABLE kiosks (
    id                  TEXT PRIMARY KEY,
    token_hash          TEXT NOT NULL UNIQUE,
    pos_external_id     TEXT NOT NULL UNIQUE,
    pos_key             TEXT NOT NULL,
    payment_model       TEXT NOT NULL DEFAULT 'unattended' CHECK (payment_model = 'unattended'),
    response_generation TEXT NOT NULL DEFAULT 'v2' CHECK (response_generation IN ('v1','v2')),
    pos_qr              TEXT,
    created_at          INTEGER NOT NULL
  );

  CREATE TABLE orders (
    id                   TEXT PRIMARY KEY,
    kiosk_id             TEXT NOT NULL REFERENCES kiosks(id),
    slot                 INTEGER,
    sku                  TEXT NOT NULL,
    title                TEXT NOT NULL,
    quantity             INTEGER NOT NULL,
    unit_price           INTEGER NOT NULL,
    amount               INTEGER NOT NULL,
    currency             TEXT NOT NULL,
    claimed_amount       INTEGER NOT NULL,
    claimed_currency     TEXT NOT NULL,
    state                TEXT NOT NULL,
    reject_reason        TEXT,
    deadline             INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    paid_at              INTEGER,
    merchant_order_id    TEXT,
    payment_ids          TEXT NOT NULL DEFAULT '[]',
    last_notification_at INTEGER,
    vend_result          TEXT,
    needs_review         TEXT
  );
  CREATE INDEX orders_kiosk_state ON orders(kiosk_id, state);
  CREATE INDEX orders_state ON orders(state, deadline);

  CREATE TABLE order_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL,
    "from"   TEXT,
    "to"     TEXT NOT NULL,
    event    TEXT NOT NULL,
    detail   TEXT,
    at       INTEGER NOT NULL
  );
  CREATE INDEX order_events_order ON order_events(order_id, seq);

  CREATE TABLE payments (
    payment_id        TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL,
    merchant_order_id TEXT,
    status            TEXT NOT NULL,
    amount            INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    ever_approved     INTEGER NOT NULL DEFAULT 0,
    first_seen_at     INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
  );
  CREATE INDEX payments_order ON payments(order_id);

  CREATE TABLE refunds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id        TEXT NOT NULL,
    payment_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    mp_refund_id    TEXT,
    amount          INTEGER,
    currency        TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    requested_at    INTEGER NOT NULL,
    completed_at    INTEGER
  );
  CREATE INDEX refunds_order ON refunds(order_id);

  CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    form         TEXT NOT NULL,
    topic        TEXT,
    resource_id  TEXT,
    query        TEXT NOT NULL,
    body         TEXT,
    headers      TEXT NOT NULL,
    signature_ok INTEGER,
    processed_at INTEGER,
    outcome      TEXT
  );
  CREATE INDEX notifications_unprocessed ON notifications(processed_at);

  CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kiosk_id   TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX outbox_kiosk ON outbox(kiosk_id, seq);

  CREATE TABLE inbox (
    kiosk_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (kiosk_id, message_id)
  );
  `,
  // 2: surplus refunds (a payment refunded on its own, the order keeps its state), the
  // paid-but-no-vend-result watchdog, and the operators' review list
  `
  ALTER TABLE refunds ADD COLUMN reason TEXT NOT NULL DEFAULT 'order';
  ALTER TABLE orders ADD COLUMN vend_overdue_at INTEGER;
  CREATE INDEX orders_needs_review ON orders(created_at) WHERE needs_review IS NOT NULL;
  CREATE INDEX refunds_status ON refunds(status);
  `,
  // 3: every payment model. The kiosk's model moves to a new column: SQLite cannot drop the CHECK
  // that pinned the old one to 'unattended' without rebuilding a table other tables reference, so
  // that column stays behind, unused. Orders learn what was made payable at Mercado Pago (its id,
  // the per-order QR) and where that stands (core/mp-offer.ts).
  `
  ALTER TABLE kiosks ADD COLUMN model TEXT NOT NULL DEFAULT 'unattended';
  ALTER TABLE kiosks ADD COLUMN model_mode TEXT;
  ALTER TABLE kiosks ADD COLUMN store_external_id TEXT;
  ALTER TABLE kiosks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX kiosks_revision ON kiosks(revision);
  ALTER TABLE orders ADD COLUMN offer_state TEXT NOT NULL DEFAULT 'local';
  ALTER TABLE orders ADD COLUMN mp_order_id TEXT;
  ALTER TABLE orders ADD COLUMN qr TEXT;
  ALTER TABLE orders ADD COLUMN offer_error TEXT;
  CREATE INDEX orders_offer_work ON orders(offer_state) WHERE offer_state IN ('due', 'withdraw_due');
  `,
  // 4: the machines' own audits (EVA-DTS over DEX, sent by the agents as dex.audit); the parsed
  // frame is kept whole in body, the columns are what the audit is looked up by
  `
  CREATE TABLE dex_audits (
    audit_id       TEXT PRIMARY KEY,
    kiosk_id       TEXT NOT NULL REFERENCES kiosks(id),
    machine_serial TEXT NOT NULL,
    read_at        INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    body           TEXT NOT NULL
  );
  CREATE INDEX dex_audits_kiosk ON dex_audits(kiosk_id, read_at);
  `,
  // 5: limits on the public routes (docs/reliability.md): who sent a notification (per-source
  // cap), how often processing it failed (a poison row is given up after N tries, flagged),
  // and an index for pruning processed rows after the retention period
  `
  ALTER TABLE notifications ADD COLUMN source TEXT;
  ALTER TABLE notifications ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE notifications ADD COLUMN given_up_at INTEGER;
  CREATE INDEX notifications_source ON notifications(source, received_at);
  CREATE INDEX notifications_given_up ON notifications(given_up_at) WHERE given_up_at IS NOT NULL;
  `,
  // 6: inbox retention (issue 8): applied rows older than limits.inbox.retentionDays are pruned,
  // found by when they were applied
  `
  CREATE INDEX inbox_applied ON inbox(applied_at);
  `,
  // 7: several relay instances (kiosk presence) and the console's alerts and outbound deliveries;
  // additive: a relay rolled back to 6 still opens the file
  {
    additive: true,
    sql: `
  CREATE TABLE kiosk_presence (
    kiosk_id     TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    connected_at INTEGER NOT NULL,
    seen_at      INTEGER NOT NULL
  );
  CREATE INDEX kiosk_presence_instance ON kiosk_presence(instance_id);
  CREATE INDEX kiosk_presence_seen ON kiosk_presence(seen_at);

  CREATE TABLE alerts (
    id         TEXT PRIMARY KEY,
    key        TEXT NOT NULL,
    kind       TEXT NOT NULL,
    kiosk_id   TEXT,
    summary    TEXT NOT NULL,
    facts      TEXT NOT NULL,
    fired_at   INTEGER NOT NULL,
    cleared_at INTEGER
  );
  CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE cleared_at IS NULL;
  CREATE INDEX alerts_fired ON alerts(fired_at);

  CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    event        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER
  );
  CREATE INDEX deliveries_due ON deliveries(next_at) WHERE state IN ('pending', 'held');
  CREATE INDEX deliveries_subject ON deliveries(subject);
  CREATE INDEX deliveries_created ON deliveries(created_at);
  `,
  },
  // 8: the operator's console (issue 11): what the kiosks report and the commands sent to them
  // (relay/fleet-recorder.ts: status snapshots, presence, refills kept once per refill id, the
  // commands with their lifecycle history and the per-kiosk confirmed prices), the par level of
  // each slot for the pick lists, and the API keys of the integrations (hashed secrets).
  // additive: new tables only, a relay rolled back to 7 still opens the file
  {
    additive: true,
    sql: `
  CREATE TABLE fleet_status (
    kiosk_id    TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE TABLE fleet_presence (
    kiosk_id TEXT PRIMARY KEY,
    online   INTEGER NOT NULL,
    since    INTEGER NOT NULL
  );
  CREATE TABLE fleet_refills (
    refill_id   TEXT PRIMARY KEY,
    kiosk_id    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    by_whom     TEXT NOT NULL,
    slots       TEXT NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX fleet_refills_kiosk ON fleet_refills(kiosk_id, received_at);
  CREATE TABLE fleet_refusals (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kiosk_id    TEXT NOT NULL,
    frame_id    TEXT NOT NULL,
    command_id  TEXT,
    reason      TEXT NOT NULL,
    message     TEXT NOT NULL,
    ours        INTEGER NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX fleet_refusals_kiosk ON fleet_refusals(kiosk_id, seq);
  CREATE TABLE fleet_commands (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    kiosk_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    action       TEXT NOT NULL,
    issued_by    TEXT NOT NULL,
    reason       TEXT,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    frame        TEXT NOT NULL,
    delivered_at INTEGER,
    kiosk_at     INTEGER,
    answered_at  INTEGER,
    refusal      TEXT,
    result       TEXT,
    message      TEXT
  );
  CREATE INDEX fleet_commands_kiosk ON fleet_commands(kiosk_id, seq);
  CREATE INDEX fleet_commands_state ON fleet_commands(state, seq);
  CREATE TABLE fleet_command_history (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    "from"     TEXT,
    "to"       TEXT NOT NULL,
    event      TEXT NOT NULL,
    detail     TEXT
  );
  CREATE INDEX fleet_command_history_command ON fleet_command_history(command_id, seq);
  CREATE TABLE fleet_kiosk_prices (
    kiosk_id   TEXT PRIMARY KEY,
    catalog    TEXT,
    prices     TEXT NOT NULL,
    command_id TEXT NOT NULL
  );
  CREATE TABLE stock_par (
    kiosk_id TEXT NOT NULL,
    slot     INTEGER NOT NULL,
    par      INTEGER NOT NULL,
    PRIMARY KEY (kiosk_id, slot)
  );
  CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
  );
  `,
  },
  // 9: the operator's console (issue 11): accounts, login sessions (only the sha256 of the cookie's
  // secret), and the audit of every operator action (who, when, why), read into order timelines
  `
  CREATE TABLE operators (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer','operator','admin')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
  );
  CREATE TABLE operator_sessions (
    token_hash  TEXT PRIMARY KEY,
    operator_id INTEGER NOT NULL REFERENCES operators(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
  );
  CREATE INDEX operator_sessions_expiry ON operator_sessions(expires_at);
  CREATE INDEX operator_sessions_operator ON operator_sessions(operator_id);
  CREATE TABLE operator_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    operator_id INTEGER REFERENCES operators(id),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    order_id    TEXT,
    kiosk_id    TEXT,
    reason      TEXT NOT NULL,
    detail      TEXT,
    at          INTEGER NOT NULL
  );
  CREATE INDEX operator_audit_order ON operator_audit(order_id, id);
  `,
  // 10: partial refunds and retried refunds (issue 11): the amount an operator asked for (minor
  // units; null: all that remains of the payment). Not additive: an older relay would take a
  // settled partial refund for the whole payment's refund.
  `
  ALTER TABLE refunds ADD COLUMN requested_amount INTEGER;
  `,
  // 11: the contingency search walks the recently closed orders newest first with a keyset cursor
  // (store closedContingencyCandidates); this index holds only cancelled/expired orders, so a page
  // reads its own rows whatever the history. Additive: an index only.
  {
    additive: true,
    sql: `
  CREATE INDEX orders_closed ON orders(updated_at, id) WHERE state IN ('cancelled','expired');
  `,
  },
];
