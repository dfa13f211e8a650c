import type { DexAuditStore } from '../api.js';
import type { DexAuditFrame } from '../../../protocol/messages.js';
import type { DexAuditRecord } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { dexAuditFromRow } from '../rows.js';

export class SqliteDexAudits implements Sync<DexAuditStore> {
  constructor(private readonly c: SqliteConn) {}

  /** Stores a machine audit once (a re-sent read with the same auditId is ignored); true when new. */
  insertDexAudit(kioskId: string, frame: DexAuditFrame, at: number): boolean {
    const { v: _v, id: _id, type: _type, ...body } = frame;
    return (
      this.c.db
        .prepare('INSERT OR IGNORE INTO dex_audits (audit_id, kiosk_id, machine_serial, read_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?)')
        .run(frame.auditId, kioskId, frame.machine.serial, frame.readAt, at, JSON.stringify(body)).changes > 0
    );
  }

  getDexAudit(auditId: string): DexAuditRecord | undefined {
    return this.c.one(dexAuditFromRow, 'SELECT * FROM dex_audits WHERE audit_id = ?', auditId);
  }

  /** Newest first; from/to bound read_at (inclusive). */
  dexAudits(opts: { kioskId?: string; from?: number; to?: number; limit: number }): DexAuditRecord[] {
    return this.c.many(
      dexAuditFromRow,
      `SELECT * FROM dex_audits WHERE (@kiosk IS NULL OR kiosk_id = @kiosk) AND read_at >= @from AND read_at <= @to
       ORDER BY read_at DESC, audit_id DESC LIMIT @limit`,
      { kiosk: opts.kioskId ?? null, from: opts.from ?? 0, to: opts.to ?? Number.MAX_SAFE_INTEGER, limit: opts.limit },
    );
  }

  /** The same machine's audit read just before `readAt`, for the sales between two reads. */
  previousDexAudit(kioskId: string, machineSerial: string, readAt: number): DexAuditRecord | undefined {
    return this.c.one(
      dexAuditFromRow,
      'SELECT * FROM dex_audits WHERE kiosk_id = ? AND machine_serial = ? AND read_at < ? ORDER BY read_at DESC LIMIT 1',
      kioskId,
      machineSerial,
      readAt,
    );
  }
}
