import type { NotificationStore } from '../api.js';
import type { NotificationRecord } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { notificationFromRow, notificationValues } from '../rows.js';

export class SqliteNotifications implements Sync<NotificationStore> {
  constructor(private readonly c: SqliteConn) {}

  insertNotification(n: Omit<NotificationRecord, 'id' | 'attempts' | 'givenUpAt'>): number {
    const res = this.c.db
      .prepare(
        `INSERT INTO notifications (received_at, form, topic, resource_id, query, body, headers, signature_ok, processed_at, outcome, source)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(...notificationValues(n));
    return Number(res.lastInsertRowid);
  }

  /** Notifications stored from `source` since `since` (the per-source cap). */
  countNotificationsFrom(source: string, since: number): number {
    return this.c.count('SELECT COUNT(*) AS n FROM notifications WHERE source = ? AND received_at >= ?', source, since);
  }

  /** One more failed processing of a notification; returns how many there have been. */
  noteNotificationFailure(id: number, outcome: string): number {
    const r = this.c.db
      .prepare('UPDATE notifications SET attempts = attempts + 1, outcome = ? WHERE id = ? RETURNING attempts')
      .get(outcome, id) as { attempts: number } | undefined;
    return r?.attempts ?? 0;
  }

  /** Processing given up for good: done (never resumed) and flagged for a person. */
  giveUpNotification(id: number, outcome: string, at: number): void {
    this.c.db.prepare('UPDATE notifications SET outcome = ?, processed_at = ?, given_up_at = ? WHERE id = ?').run(outcome, at, at, id);
  }

  countGivenUpNotifications(): number {
    return this.c.count('SELECT COUNT(*) AS n FROM notifications WHERE given_up_at IS NOT NULL');
  }

  /** Retention: deletes processed notifications older than `processedBefore`; returns how many. */
  pruneNotifications(processedBefore: number): number {
    return this.c.db.prepare('DELETE FROM notifications WHERE processed_at IS NOT NULL AND processed_at < ?').run(processedBefore).changes;
  }

  markNotification(id: number, outcome: string, processedAt: number | null): void {
    this.c.db.prepare('UPDATE notifications SET outcome = ?, processed_at = ? WHERE id = ?').run(outcome, processedAt, id);
  }

  unprocessedNotifications(): NotificationRecord[] {
    return this.c.many(notificationFromRow, 'SELECT * FROM notifications WHERE processed_at IS NULL ORDER BY id');
  }

  listNotifications(): NotificationRecord[] {
    return this.c.many(notificationFromRow, 'SELECT * FROM notifications ORDER BY id');
  }
}
