import type { ApiKeyStore, SaleRow, SalesStore, StockStore } from '../api.js';
import { apiKeyFromRow, parLevelFromRow, saleFromRow } from '../recorder-rows.js';
import { StoreError, type ApiKeyRecord } from '../types.js';
import { isUniqueViolation, type PgConn } from './conn.js';

// Integrations' API keys and the slots' par levels (migration 8).

export class PgApiKeys implements ApiKeyStore, StockStore, SalesStore {
  constructor(private readonly c: PgConn) {}

  async insertApiKey(k: Omit<ApiKeyRecord, 'revokedAt'>): Promise<void> {
    try {
      await this.c.run('INSERT INTO api_keys (id, name, scopes, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)', k.id, k.name, JSON.stringify(k.scopes), k.secretHash, k.createdAt);
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreError(`an API key named "${k.name}" exists already: pick another name, or revoke that one first`);
      throw err;
    }
  }

  apiKeyByHash(secretHash: string): Promise<ApiKeyRecord | undefined> {
    return this.c.one(apiKeyFromRow, 'SELECT * FROM api_keys WHERE secret_hash = $1', secretHash);
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.c.many(apiKeyFromRow, 'SELECT * FROM api_keys ORDER BY created_at, id');
  }

  async revokeApiKey(idOrName: string, at: number): Promise<boolean> {
    return (await this.c.run('UPDATE api_keys SET revoked_at = $1 WHERE (id = $2 OR name = $2) AND revoked_at IS NULL', at, idOrName)) > 0;
  }

  parLevels(): Promise<Array<{ kioskId: string; slot: number; par: number }>> {
    return this.c.many(parLevelFromRow, 'SELECT * FROM stock_par ORDER BY kiosk_id, slot');
  }

  async setParLevel(kioskId: string, slot: number, par: number): Promise<void> {
    if (par === 0) await this.c.run('DELETE FROM stock_par WHERE kiosk_id = $1 AND slot = $2', kioskId, slot);
    else await this.c.run('INSERT INTO stock_par (kiosk_id, slot, par) VALUES ($1, $2, $3) ON CONFLICT (kiosk_id, slot) DO UPDATE SET par = excluded.par', kioskId, slot, par);
  }

  salesByDay(from: number, to: number, kioskId?: string): Promise<SaleRow[]> {
    return this.c.many(
      saleFromRow,
      `SELECT paid_at / 86400000 AS day, kiosk_id, sku, currency, SUM(quantity)::bigint AS units, SUM(amount)::bigint AS amount FROM orders
       WHERE state = 'vended' AND paid_at >= $1 AND paid_at < $2 AND ($3::text IS NULL OR kiosk_id = $3)
       GROUP BY day, kiosk_id, sku, currency ORDER BY day, kiosk_id, sku, currency`,
      from,
      to,
      kioskId ?? null,
    );
  }
}
