import type { OutboxStore } from '../api.js';
import type { OutboxRecord } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { outboxFromRow } from '../rows.js';

export class SqliteOutbox implements Sync<OutboxStore> {
  constructor(private readonly c: SqliteConn) {}

  enqueueOutbox(kioskId: string, frame: { id: string; type: string }, at: number): void {
    this.c.db
      .prepare('INSERT INTO outbox (kiosk_id, message_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(kioskId, frame.id, frame.type, JSON.stringify(frame), at);
  }

  outboxOf(kioskId: string): OutboxRecord[] {
    return this.c.many(outboxFromRow, 'SELECT * FROM outbox WHERE kiosk_id = ? ORDER BY seq', kioskId);
  }

  /** Only the kiosk the message was addressed to can ack it away. */
  deleteOutbox(kioskId: string, messageId: string): boolean {
    return this.c.db.prepare('DELETE FROM outbox WHERE kiosk_id = ? AND message_id = ?').run(kioskId, messageId).changes > 0;
  }

  inInbox(kioskId: string, messageId: string): boolean {
    return this.c.db.prepare('SELECT 1 FROM inbox WHERE kiosk_id = ? AND message_id = ?').get(kioskId, messageId) !== undefined;
  }

  recordInbox(kioskId: string, messageId: string, type: string, at: number): void {
    this.c.db.prepare('INSERT INTO inbox (kiosk_id, message_id, type, applied_at) VALUES (?, ?, ?, ?)').run(kioskId, messageId, type, at);
  }

  pruneInbox(appliedBefore: number): number {
    return this.c.run('DELETE FROM inbox WHERE applied_at < ?', appliedBefore).changes;
  }

  outboxDepth(): number {
    return this.c.count('SELECT COUNT(*) AS n FROM outbox');
  }
}
