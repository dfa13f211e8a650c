import type { DexAuditStore } from '../api.js';
import type { DexAuditFrame } from '../../../protocol/messages.js';
import { dexAuditFromRow } from '../rows.js';
import type { DexAuditRecord } from '../types.js';
import type { PgConn } from './conn.js';

export class PgDexAudits implements DexAuditStore {
  constructor(private readonly c: PgConn) {}

  async insertDexAudit(kioskId: string, frame: DexAuditFrame, at: number): Promise<boolean> {
    const { v: _v, id: _id, type: _type, ...body } = frame;
    return (
      (await this.c.run(
        'INSERT INTO dex_audits (audit_id, kiosk_id, machine_serial, read_at, received_at, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (audit_id) DO NOTHING',
        frame.auditId,
        kioskId,
        frame.machine.serial,
        frame.readAt,
        at,
        JSON.stringify(body),
      )) > 0
    );
  }

  getDexAudit(auditId: string): Promise<DexAuditRecord | undefined> {
    return this.c.one(dexAuditFromRow, 'SELECT * FROM dex_audits WHERE audit_id = $1', auditId);
  }

  dexAudits(opts: { kioskId?: string; from?: number; to?: number; limit: number }): Promise<DexAuditRecord[]> {
    return this.c.many(
      dexAuditFromRow,
      `SELECT * FROM dex_audits WHERE ($1::text IS NULL OR kiosk_id = $1) AND read_at >= $2 AND read_at <= $3
       ORDER BY read_at DESC, audit_id DESC LIMIT $4`,
      opts.kioskId ?? null,
      opts.from ?? 0,
      opts.to ?? Number.MAX_SAFE_INTEGER,
      opts.limit,
    );
  }

  previousDexAudit(kioskId: string, machineSerial: string, readAt: number): Promise<DexAuditRecord | undefined> {
    return this.c.one(
      dexAuditFromRow,
      'SELECT * FROM dex_audits WHERE kiosk_id = $1 AND machine_serial = $2 AND read_at < $3 ORDER BY read_at DESC LIMIT 1',
      kioskId,
      machineSerial,
      readAt,
    );
  }
}
