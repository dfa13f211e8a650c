import type { OperatorStore } from '../api.js';
import { operatorAuditFromRow, operatorFromRow, operatorSessionFromRow } from '../rows.js';
import { StoreError, type OperatorAuditRecord, type OperatorRecord, type OperatorSessionRecord } from '../types.js';
import type { PgConn } from './conn.js';

// Console accounts, their sessions and the audit of what they did (schema 9).

export class PgOperators implements OperatorStore {
  constructor(private readonly c: PgConn) {}

  async addOperator(email: string, role: OperatorRecord['role'], passwordHash: string, at: number): Promise<OperatorRecord> {
    const e = email.trim().toLowerCase();
    const r = await this.c.rows(`INSERT INTO operators (email, role, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING *`, [e, role, passwordHash, at]);
    if (!r[0]) throw new StoreError(`operator ${e} exists already: disable it or choose another e-mail`);
    return operatorFromRow(r[0]);
  }

  getOperatorByEmail(email: string): Promise<OperatorRecord | undefined> {
    return this.c.one(operatorFromRow, 'SELECT * FROM operators WHERE email = $1', email.trim().toLowerCase());
  }

  getOperator(id: number): Promise<OperatorRecord | undefined> {
    return this.c.one(operatorFromRow, 'SELECT * FROM operators WHERE id = $1', id);
  }

  listOperators(): Promise<OperatorRecord[]> {
    return this.c.many(operatorFromRow, 'SELECT * FROM operators ORDER BY id');
  }

  setOperatorDisabled(email: string, at: number | null): Promise<boolean> {
    return this.c.atomic(async (c) => {
      const r = await c.rows('UPDATE operators SET disabled_at = $2 WHERE email = $1 RETURNING id', [email.trim().toLowerCase(), at]);
      if (!r[0]) return false;
      if (at !== null) await c.run('DELETE FROM operator_sessions WHERE operator_id = $1', r[0].id);
      return true;
    });
  }

  async insertOperatorSession(s: OperatorSessionRecord): Promise<void> {
    await this.c.run('INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', s.tokenHash, s.operatorId, s.createdAt, s.expiresAt);
  }

  getOperatorSession(tokenHash: string): Promise<OperatorSessionRecord | undefined> {
    return this.c.one(operatorSessionFromRow, 'SELECT * FROM operator_sessions WHERE token_hash = $1', tokenHash);
  }

  async deleteOperatorSession(tokenHash: string): Promise<void> {
    await this.c.run('DELETE FROM operator_sessions WHERE token_hash = $1', tokenHash);
  }

  pruneOperatorSessions(before: number): Promise<number> {
    return this.c.run('DELETE FROM operator_sessions WHERE expires_at < $1', before);
  }

  async insertOperatorAudit(a: Omit<OperatorAuditRecord, 'id'>): Promise<number> {
    const r = await this.c.rows(
      'INSERT INTO operator_audit (operator_id, actor, action, order_id, kiosk_id, reason, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id',
      [a.operatorId, a.actor, a.action, a.orderId, a.kioskId, a.reason, a.detail, a.at],
    );
    return r[0]!.id as number;
  }

  operatorAuditOf(orderId: string): Promise<OperatorAuditRecord[]> {
    return this.c.many(operatorAuditFromRow, 'SELECT * FROM operator_audit WHERE order_id = $1 ORDER BY id', orderId);
  }

  recentOperatorAudit(limit: number): Promise<OperatorAuditRecord[]> {
    return this.c.many(operatorAuditFromRow, 'SELECT * FROM operator_audit ORDER BY id DESC LIMIT $1', limit);
  }
}
