import type { NotificationStore } from '../api.js';
import { notificationFromRow, notificationValues } from '../rows.js';
import type { NotificationRecord } from '../types.js';
import type { PgConn } from './conn.js';

export class PgNotifications implements NotificationStore {
  constructor(private readonly c: PgConn) {}

  async insertNotification(n: Omit<NotificationRecord, 'id' | 'attempts' | 'givenUpAt'>): Promise<number> {
    const r = await this.c.rows(
      `INSERT INTO notifications (received_at, form, topic, resource_id, query, body, headers, signature_ok, processed_at, outcome, source)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
      notificationValues(n),
    );
    return r[0]!.id as number;
  }

  countNotificationsFrom(source: string, since: number): Promise<number> {
    return this.c.count('SELECT COUNT(*) AS n FROM notifications WHERE source = $1 AND received_at >= $2', source, since);
  }

  async noteNotificationFailure(id: number, outcome: string): Promise<number> {
    const r = await this.c.rows('UPDATE notifications SET attempts = attempts + 1, outcome = $1 WHERE id = $2 RETURNING attempts', [outcome, id]);
    return (r[0]?.attempts as number | undefined) ?? 0;
  }

  async giveUpNotification(id: number, outcome: string, at: number): Promise<void> {
    await this.c.run('UPDATE notifications SET outcome = $1, processed_at = $2, given_up_at = $2 WHERE id = $3', outcome, at, id);
  }

  countGivenUpNotifications(): Promise<number> {
    return this.c.count('SELECT COUNT(*) AS n FROM notifications WHERE given_up_at IS NOT NULL');
  }

  pruneNotifications(processedBefore: number): Promise<number> {
    return this.c.run('DELETE FROM notifications WHERE processed_at IS NOT NULL AND processed_at < $1', processedBefore);
  }

  async markNotification(id: number, outcome: string, processedAt: number | null): Promise<void> {
    await this.c.run('UPDATE notifications SET outcome = $1, processed_at = $2 WHERE id = $3', outcome, processedAt, id);
  }

  unprocessedNotifications(): Promise<NotificationRecord[]> {
    return this.c.many(notificationFromRow, 'SELECT * FROM notifications WHERE processed_at IS NULL ORDER BY id');
  }

  listNotifications(): Promise<NotificationRecord[]> {
    return this.c.many(notificationFromRow, 'SELECT * FROM notifications ORDER BY id');
  }

  /** unprocessedNotifications, limited, each row claimed with FOR UPDATE SKIP LOCKED (see ./orders.ts). */
  async claimUnprocessedNotifications(limit: number): Promise<NotificationRecord[]> {
    this.c.requireTransaction('claimUnprocessedNotifications');
    return await this.c.many(notificationFromRow, 'SELECT * FROM notifications WHERE processed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED', limit);
  }
}
