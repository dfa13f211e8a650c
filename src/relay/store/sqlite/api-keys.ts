import type { ApiKeyStore, SaleRow, SalesStore, StockStore } from '../api.js';
import { StoreError, type ApiKeyRecord } from '../types.js';
import { apiKeyFromRow, parLevelFromRow, saleFromRow } from '../recorder-rows.js';
import type { SqliteConn, Sync } from './conn.js';

// Integrations' API keys and the slots' par levels (migration 8).

export class SqliteApiKeys implements Sync<ApiKeyStore & StockStore & SalesStore> {
  constructor(private readonly c: SqliteConn) {}

  insertApiKey(k: Omit<ApiKeyRecord, 'revokedAt'>): void {
    try {
      this.c.run('INSERT INTO api_keys (id, name, scopes, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)', k.id, k.name, JSON.stringify(k.scopes), k.secretHash, k.createdAt);
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) throw new StoreError(`an API key named "${k.name}" exists already: pick another name, or revoke that one first`);
      throw err;
    }
  }

  apiKeyByHash(secretHash: string): ApiKeyRecord | undefined {
    return this.c.one(apiKeyFromRow, 'SELECT * FROM api_keys WHERE secret_hash = ?', secretHash);
  }

  listApiKeys(): ApiKeyRecord[] {
    return this.c.many(apiKeyFromRow, 'SELECT * FROM api_keys ORDER BY created_at, id');
  }

  revokeApiKey(idOrName: string, at: number): boolean {
    return this.c.run('UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL', at, idOrName, idOrName).changes > 0;
  }

  parLevels(): Array<{ kioskId: string; slot: number; par: number }> {
    return this.c.many(parLevelFromRow, 'SELECT * FROM stock_par ORDER BY kiosk_id, slot');
  }

  setParLevel(kioskId: string, slot: number, par: number): void {
    if (par === 0) this.c.run('DELETE FROM stock_par WHERE kiosk_id = ? AND slot = ?', kioskId, slot);
    else this.c.run('INSERT INTO stock_par (kiosk_id, slot, par) VALUES (?, ?, ?) ON CONFLICT(kiosk_id, slot) DO UPDATE SET par = excluded.par', kioskId, slot, par);
  }

  salesByDay(from: number, to: number, kioskId?: string): SaleRow[] {
    return this.c.many(
      saleFromRow,
      `SELECT paid_at / 86400000 AS day, kiosk_id, sku, currency, SUM(quantity) AS units, SUM(amount) AS amount FROM orders
       WHERE state = 'vended' AND paid_at >= ? AND paid_at < ? AND (? IS NULL OR kiosk_id = ?)
       GROUP BY day, kiosk_id, sku, currency ORDER BY day, kiosk_id, sku, currency`,
      from,
      to,
      kioskId ?? null,
      kioskId ?? null,
    );
  }
}
