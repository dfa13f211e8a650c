import type { OutboxStore } from '../api.js';
import { SIGNAL_CHANNEL } from '../../fleet/signals.js';
import { outboxFromRow } from '../rows.js';
import type { OutboxRecord } from '../types.js';
import type { PgConn } from './conn.js';

export class PgOutbox implements OutboxStore {
  constructor(private readonly c: PgConn) {}

  /**
   * The row, and a NOTIFY that tells the instance holding the kiosk's WebSocket to push it
   * (relay/fleet/signals.ts). PostgreSQL delivers a NOTIFY when its transaction commits, never
   * for a rolled-back one, so the signal and the row become visible together.
   */
  async enqueueOutbox(kioskId: string, frame: { id: string; type: string }, at: number): Promise<void> {
    await this.c.rows(
      `WITH ins AS (INSERT INTO outbox (kiosk_id, message_id, type, payload, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING kiosk_id)
       SELECT pg_notify($6, 'outbox:' || kiosk_id) FROM ins`,
      [kioskId, frame.id, frame.type, JSON.stringify(frame), at, SIGNAL_CHANNEL],
    );
  }

  outboxOf(kioskId: string): Promise<OutboxRecord[]> {
    return this.c.many(outboxFromRow, 'SELECT * FROM outbox WHERE kiosk_id = $1 ORDER BY seq', kioskId);
  }

  /** Reliable frames written for kiosks and not yet acked, all kiosks (the outbox depth metric). */
  outboxDepth(): Promise<number> {
    return this.c.count('SELECT COUNT(*) AS n FROM outbox');
  }

  async deleteOutbox(kioskId: string, messageId: string): Promise<boolean> {
    return (await this.c.run('DELETE FROM outbox WHERE kiosk_id = $1 AND message_id = $2', kioskId, messageId)) > 0;
  }

  async inInbox(kioskId: string, messageId: string): Promise<boolean> {
    return (await this.c.rows('SELECT 1 FROM inbox WHERE kiosk_id = $1 AND message_id = $2', [kioskId, messageId])).length > 0;
  }

  pruneInbox(appliedBefore: number): Promise<number> {
    return this.c.run('DELETE FROM inbox WHERE applied_at < $1', appliedBefore);
  }

  async recordInbox(kioskId: string, messageId: string, type: string, at: number): Promise<void> {
    await this.c.run('INSERT INTO inbox (kiosk_id, message_id, type, applied_at) VALUES ($1, $2, $3, $4)', kioskId, messageId, type, at);
  }
}
