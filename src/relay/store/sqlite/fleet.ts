import type { AlertStore, DeliveryStore, PresenceStore } from '../api.js';
import { outboundDelivery, type DeliveryEvent, type DeliveryState } from '../../../core/outbound-delivery.js';
import { StoreError, type AlertRecord, type DeliveryRecord, type NewDelivery, type PresenceRow } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { alertFromRow, deliveryFromRow, presenceFromRow } from '../fleet-rows.js';

// Schema 7 on SQLite: kiosk presence (which relay instance holds each kiosk; with one SQLite relay
// always this one, kept so both stores answer the same), alerts and outbound deliveries.

export class SqlitePresence implements Sync<PresenceStore> {
  constructor(private readonly c: SqliteConn) {}

  claimPresence(kioskId: string, instanceId: string, at: number): void {
    this.c.run(
      `INSERT INTO kiosk_presence (kiosk_id, instance_id, connected_at, seen_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (kiosk_id) DO UPDATE SET instance_id = excluded.instance_id, connected_at = excluded.connected_at, seen_at = excluded.seen_at`,
      kioskId,
      instanceId,
      at,
      at,
    );
  }

  touchPresence(instanceId: string, at: number): number {
    return this.c.run('UPDATE kiosk_presence SET seen_at = ? WHERE instance_id = ?', at, instanceId).changes;
  }

  releasePresence(kioskId: string, instanceId: string): boolean {
    return this.c.run('DELETE FROM kiosk_presence WHERE kiosk_id = ? AND instance_id = ?', kioskId, instanceId).changes > 0;
  }

  presenceOf(kioskId: string): PresenceRow | undefined {
    return this.c.one(presenceFromRow, 'SELECT * FROM kiosk_presence WHERE kiosk_id = ?', kioskId);
  }

  presentSince(since: number): PresenceRow[] {
    return this.c.many(presenceFromRow, 'SELECT * FROM kiosk_presence WHERE seen_at >= ? ORDER BY kiosk_id', since);
  }

  kiosksWithOutbox(): string[] {
    return this.c.many((r) => r.kiosk_id as string, 'SELECT DISTINCT kiosk_id FROM outbox ORDER BY kiosk_id');
  }
}

export class SqliteAlerts implements Sync<AlertStore> {
  constructor(
    private readonly c: SqliteConn,
    private readonly deliveries: SqliteDeliveries,
  ) {}

  openAlerts(): AlertRecord[] {
    return this.c.many(alertFromRow, 'SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY fired_at, id');
  }

  fireAlert(a: Omit<AlertRecord, 'clearedAt'>, deliveries: NewDelivery[]): AlertRecord | undefined {
    return this.c.atomically(() => {
      // the partial unique index (one open alert per key) makes a second fire a no-op
      const r = this.c.run(
        `INSERT INTO alerts (id, key, kind, kiosk_id, summary, facts, fired_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        a.id,
        a.key,
        a.kind,
        a.kioskId,
        a.summary,
        JSON.stringify(a.facts),
        a.firedAt,
      );
      if (r.changes === 0) return undefined;
      this.deliveries.insertDeliveries(deliveries, a.firedAt);
      return { ...a, clearedAt: null };
    });
  }

  clearAlert(id: string, at: number, deliveries: NewDelivery[]): boolean {
    return this.c.atomically(() => {
      if (this.c.run('UPDATE alerts SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL', at, id).changes === 0) return false;
      this.deliveries.insertDeliveries(deliveries, at);
      return true;
    });
  }

  alerts(opts: { limit: number; open?: boolean; kioskId?: string }): AlertRecord[] {
    return this.c.many(
      alertFromRow,
      `SELECT * FROM alerts WHERE (@open IS NULL OR (@open = 1 AND cleared_at IS NULL) OR (@open = 0 AND cleared_at IS NOT NULL))
         AND (@kiosk IS NULL OR kiosk_id = @kiosk) ORDER BY fired_at DESC, id DESC LIMIT @limit`,
      { open: opts.open === undefined ? null : opts.open ? 1 : 0, kiosk: opts.kioskId ?? null, limit: opts.limit },
    );
  }
}

export class SqliteDeliveries implements Sync<DeliveryStore> {
  constructor(private readonly c: SqliteConn) {}

  insertDeliveries(rows: NewDelivery[], at: number): void {
    for (const d of rows) {
      this.c.run(
        `INSERT INTO deliveries (id, channel, event, payload, subject, state, attempts, next_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
        d.id,
        d.channel,
        d.event,
        d.payload,
        d.subject,
        at,
        at,
      );
    }
  }

  dueDeliveries(now: number, limit: number): DeliveryRecord[] {
    return this.c.many(deliveryFromRow, `SELECT * FROM deliveries WHERE state IN ('pending', 'held') AND next_at <= ? ORDER BY next_at, created_at, id LIMIT ?`, now, limit);
  }

  nextDeliveryAt(): number | undefined {
    const r = this.c.db.prepare(`SELECT MIN(next_at) AS t FROM deliveries WHERE state IN ('pending', 'held')`).get() as { t: number | null };
    return r.t ?? undefined;
  }

  moveDelivery(id: string, event: DeliveryEvent, at: number, facts: { nextAt?: number; error?: string | null; attempts?: number }): DeliveryRecord {
    return this.c.atomically(() => {
      const d = this.c.one(deliveryFromRow, 'SELECT * FROM deliveries WHERE id = ?', id);
      if (!d) throw new StoreError(`no delivery "${id}"`);
      const to = outboundDelivery.next(d.state, event);
      const next: DeliveryRecord = {
        ...d,
        state: to,
        attempts: facts.attempts ?? d.attempts,
        nextAt: facts.nextAt ?? d.nextAt,
        lastError: facts.error === undefined ? d.lastError : facts.error === null ? null : facts.error.slice(0, 500),
        deliveredAt: to === 'delivered' ? at : d.deliveredAt,
      };
      this.c.run(
        'UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_error = ?, delivered_at = ? WHERE id = ? AND state = ?',
        next.state,
        next.attempts,
        next.nextAt,
        next.lastError,
        next.deliveredAt,
        id,
        d.state,
      );
      return next;
    });
  }

  deliveries(opts: { limit: number; subject?: string; state?: DeliveryState }): DeliveryRecord[] {
    return this.c.many(
      deliveryFromRow,
      `SELECT * FROM deliveries WHERE (@subject IS NULL OR subject = @subject) AND (@state IS NULL OR state = @state) ORDER BY created_at DESC, id DESC LIMIT @limit`,
      { subject: opts.subject ?? null, state: opts.state ?? null, limit: opts.limit },
    );
  }
}
