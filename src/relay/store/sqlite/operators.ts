import type { OperatorStore } from '../api.js';
import { StoreError, type OperatorAuditRecord, type OperatorRecord, type OperatorSessionRecord } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { operatorAuditFromRow, operatorFromRow, operatorSessionFromRow } from '../rows.js';

// Console accounts, their sessions and the audit of what they did (schema 9).

export class SqliteOperators implements Sync<OperatorStore> {
  constructor(private readonly c: SqliteConn) {}

  addOperator(email: string, role: OperatorRecord['role'], passwordHash: string, at: number): OperatorRecord {
    const e = email.trim().toLowerCase();
    if (this.getOperatorByEmail(e)) throw new StoreError(`operator ${e} exists already: disable it or choose another e-mail`);
    const id = Number(this.c.run('INSERT INTO operators (email, role, password_hash, created_at) VALUES (?, ?, ?, ?)', e, role, passwordHash, at).lastInsertRowid);
    return this.getOperator(id)!;
  }

  getOperatorByEmail(email: string): OperatorRecord | undefined {
    return this.c.one(operatorFromRow, 'SELECT * FROM operators WHERE email = ?', email.trim().toLowerCase());
  }

  getOperator(id: number): OperatorRecord | undefined {
    return this.c.one(operatorFromRow, 'SELECT * FROM operators WHERE id = ?', id);
  }

  listOperators(): OperatorRecord[] {
    return this.c.many(operatorFromRow, 'SELECT * FROM operators ORDER BY id');
  }

  setOperatorDisabled(email: string, at: number | null): boolean {
    return this.c.atomically(() => {
      const op = this.getOperatorByEmail(email);
      if (!op) return false;
      this.c.run('UPDATE operators SET disabled_at = ? WHERE id = ?', at, op.id);
      if (at !== null) this.c.run('DELETE FROM operator_sessions WHERE operator_id = ?', op.id);
      return true;
    });
  }

  insertOperatorSession(s: OperatorSessionRecord): void {
    this.c.run('INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at) VALUES (?, ?, ?, ?)', s.tokenHash, s.operatorId, s.createdAt, s.expiresAt);
  }

  getOperatorSession(tokenHash: string): OperatorSessionRecord | undefined {
    return this.c.one(operatorSessionFromRow, 'SELECT * FROM operator_sessions WHERE token_hash = ?', tokenHash);
  }

  deleteOperatorSession(tokenHash: string): void {
    this.c.run('DELETE FROM operator_sessions WHERE token_hash = ?', tokenHash);
  }

  pruneOperatorSessions(before: number): number {
    return this.c.run('DELETE FROM operator_sessions WHERE expires_at < ?', before).changes;
  }

  insertOperatorAudit(a: Omit<OperatorAuditRecord, 'id'>): number {
    return Number(
      this.c.run(
        'INSERT INTO operator_audit (operator_id, actor, action, order_id, kiosk_id, reason, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        a.operatorId, a.actor, a.action, a.orderId, a.kioskId, a.reason, a.detail, a.at,
      ).lastInsertRowid,
    );
  }

  operatorAuditOf(orderId: string): OperatorAuditRecord[] {
    return this.c.many(operatorAuditFromRow, 'SELECT * FROM operator_audit WHERE order_id = ? ORDER BY id', orderId);
  }

  recentOperatorAudit(limit: number): OperatorAuditRecord[] {
    return this.c.many(operatorAuditFromRow, 'SELECT * FROM operator_audit ORDER BY id DESC LIMIT ?', limit);
  }
}
