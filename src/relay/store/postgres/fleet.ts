import type { AlertStore, DeliveryStore, PresenceStore } from '../api.js';
import { outboundDelivery, type DeliveryEvent, type DeliveryState } from '../../../core/outbound-delivery.js';
import { alertFromRow, deliveryFromRow, presenceFromRow } from '../fleet-rows.js';
import { StoreError, type AlertRecord, type DeliveryRecord, type NewDelivery, type PresenceRow } from '../types.js';
import type { PgConn } from './conn.js';

// Schema 7 on PostgreSQL: kiosk presence (which relay instance holds each kiosk's WebSocket),
// alerts and outbound deliveries, shared by every instance on the database.

export class PgPresence implements PresenceStore {
  constructor(private readonly c: PgConn) {}

  async claimPresence(kioskId: string, instanceId: string, at: number): Promise<void> {
    await this.c.run(
      `INSERT INTO kiosk_presence (kiosk_id, instance_id, connected_at, seen_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (kiosk_id) DO UPDATE SET instance_id = EXCLUDED.instance_id, connected_at = EXCLUDED.connected_at, seen_at = EXCLUDED.seen_at`,
      kioskId,
      instanceId,
      at,
    );
  }

  touchPresence(instanceId: string, at: number): Promise<number> {
    return this.c.run('UPDATE kiosk_presence SET seen_at = $1 WHERE instance_id = $2', at, instanceId);
  }

  async releasePresence(kioskId: string, instanceId: string): Promise<boolean> {
    return (await this.c.run('DELETE FROM kiosk_presence WHERE kiosk_id = $1 AND instance_id = $2', kioskId, instanceId)) > 0;
  }

  presenceOf(kioskId: string): Promise<PresenceRow | undefined> {
    return this.c.one(presenceFromRow, 'SELECT * FROM kiosk_presence WHERE kiosk_id = $1', kioskId);
  }

  presentSince(since: number): Promise<PresenceRow[]> {
    return this.c.many(presenceFromRow, 'SELECT * FROM kiosk_presence WHERE seen_at >= $1 ORDER BY kiosk_id', since);
  }

  kiosksWithOutbox(): Promise<string[]> {
    return this.c.many((r) => r.kiosk_id as string, 'SELECT DISTINCT kiosk_id FROM outbox ORDER BY kiosk_id');
  }
}

export class PgAlerts implements AlertStore {
  constructor(
    private readonly c: PgConn,
    private readonly deliveries: PgDeliveries,
  ) {}

  /** fn on this module bound to a transaction: the caller's when there is one, else a new one. */
  private atomic<T>(fn: (tx: PgAlerts) => Promise<T>): Promise<T> {
    return this.c.atomic((c) => fn(c === this.c ? this : new PgAlerts(c, new PgDeliveries(c))));
  }

  openAlerts(): Promise<AlertRecord[]> {
    return this.c.many(alertFromRow, 'SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY fired_at, id');
  }

  fireAlert(a: Omit<AlertRecord, 'clearedAt'>, deliveries: NewDelivery[]): Promise<AlertRecord | undefined> {
    return this.atomic(async (tx) => {
      // the partial unique index (one open alert per key) makes a second fire, from any instance, a no-op
      const n = await tx.c.run(
        `INSERT INTO alerts (id, key, kind, kiosk_id, summary, facts, fired_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        a.id,
        a.key,
        a.kind,
        a.kioskId,
        a.summary,
        JSON.stringify(a.facts),
        a.firedAt,
      );
      if (n === 0) return undefined;
      await tx.deliveries.insertDeliveries(deliveries, a.firedAt);
      return { ...a, clearedAt: null };
    });
  }

  clearAlert(id: string, at: number, deliveries: NewDelivery[]): Promise<boolean> {
    return this.atomic(async (tx) => {
      if ((await tx.c.run('UPDATE alerts SET cleared_at = $1 WHERE id = $2 AND cleared_at IS NULL', at, id)) === 0) return false;
      await tx.deliveries.insertDeliveries(deliveries, at);
      return true;
    });
  }

  alerts(opts: { limit: number; open?: boolean; kioskId?: string }): Promise<AlertRecord[]> {
    return this.c.many(
      alertFromRow,
      `SELECT * FROM alerts WHERE ($1::boolean IS NULL OR ($1 AND cleared_at IS NULL) OR (NOT $1 AND cleared_at IS NOT NULL))
         AND ($2::text IS NULL OR kiosk_id = $2) ORDER BY fired_at DESC, id DESC LIMIT $3`,
      opts.open ?? null,
      opts.kioskId ?? null,
      opts.limit,
    );
  }
}

export class PgDeliveries implements DeliveryStore {
  constructor(private readonly c: PgConn) {}

  async insertDeliveries(rows: NewDelivery[], at: number): Promise<void> {
    for (const d of rows) {
      await this.c.run(
        `INSERT INTO deliveries (id, channel, event, payload, subject, state, attempts, next_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)`,
        d.id,
        d.channel,
        d.event,
        d.payload,
        d.subject,
        at,
      );
    }
  }

  dueDeliveries(now: number, limit: number): Promise<DeliveryRecord[]> {
    return this.c.many(deliveryFromRow, `SELECT * FROM deliveries WHERE state IN ('pending', 'held') AND next_at <= $1 ORDER BY next_at, created_at, id LIMIT $2`, now, limit);
  }

  async nextDeliveryAt(): Promise<number | undefined> {
    const r = (await this.c.rows(`SELECT MIN(next_at) AS t FROM deliveries WHERE state IN ('pending', 'held')`))[0];
    return r?.t === null || r?.t === undefined ? undefined : Number(r.t);
  }

  moveDelivery(id: string, event: DeliveryEvent, at: number, facts: { nextAt?: number; error?: string | null; attempts?: number }): Promise<DeliveryRecord> {
    return this.c.atomic(async (c) => {
      const d = await c.one(deliveryFromRow, 'SELECT * FROM deliveries WHERE id = $1 FOR UPDATE', id);
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
      await c.run(
        'UPDATE deliveries SET state = $1, attempts = $2, next_at = $3, last_error = $4, delivered_at = $5 WHERE id = $6',
        next.state,
        next.attempts,
        next.nextAt,
        next.lastError,
        next.deliveredAt,
        id,
      );
      return next;
    });
  }

  deliveries(opts: { limit: number; subject?: string; state?: DeliveryState }): Promise<DeliveryRecord[]> {
    return this.c.many(
      deliveryFromRow,
      `SELECT * FROM deliveries WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR state = $2) ORDER BY created_at DESC, id DESC LIMIT $3`,
      opts.subject ?? null,
      opts.state ?? null,
      opts.limit,
    );
  }
}
