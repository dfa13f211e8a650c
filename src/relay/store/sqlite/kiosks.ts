import type { KioskStore } from '../api.js';
import type { PaymentModelName } from '../../../protocol/messages.js';
import {
  checkKioskInput,
  checkStoreExternalId,
  hashToken,
  newKioskToken,
  newPosKey,
  posPath,
  StoreError,
  type AddedKiosk,
  type AddKioskInput,
  type Kiosk,
} from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { kioskFromRow } from '../rows.js';

/**
 * Every change a kiosk must see (its QR, its model) takes the next revision of the table, so a
 * running relay finds what another process (the CLI) changed with one indexed query.
 */
const NEXT_REVISION = '(SELECT COALESCE(MAX(revision), 0) + 1 FROM kiosks)';

export class SqliteKiosks implements Sync<KioskStore> {
  constructor(private readonly c: SqliteConn) {}

  addKiosk(input: AddKioskInput, at = Date.now()): AddedKiosk {
    const generation = checkKioskInput(input);
    if (this.getKiosk(input.id)) throw new StoreError(`kiosk "${input.id}" already exists`);
    if (this.getKioskByPos(input.posExternalId)) {
      throw new StoreError(`POS external id "${input.posExternalId}" already belongs to another kiosk`);
    }
    const token = newKioskToken();
    const posKey = newPosKey();
    this.c.db
      .prepare(
        `INSERT INTO kiosks (id, token_hash, pos_external_id, pos_key, payment_model, response_generation, pos_qr, created_at,
           model, model_mode, store_external_id)
         VALUES (?, ?, ?, ?, 'unattended', ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        input.id,
        hashToken(token),
        input.posExternalId,
        posKey,
        generation,
        input.posQr ?? null,
        at,
        input.model ?? 'unattended',
        input.modelMode ?? null,
        input.storeExternalId ?? null,
      );
    return { token, posKey, posPath: posPath(input.posExternalId, posKey), kiosk: this.getKiosk(input.id)! };
  }

  getKiosk(id: string): Kiosk | undefined {
    return this.c.one(kioskFromRow, 'SELECT * FROM kiosks WHERE id = ?', id);
  }

  getKioskByTokenHash(tokenHash: string): Kiosk | undefined {
    return this.c.one(kioskFromRow, 'SELECT * FROM kiosks WHERE token_hash = ?', tokenHash);
  }

  getKioskByPos(posExternalId: string): Kiosk | undefined {
    return this.c.one(kioskFromRow, 'SELECT * FROM kiosks WHERE pos_external_id = ?', posExternalId);
  }

  listKiosks(): Kiosk[] {
    return this.c.many(kioskFromRow, 'SELECT * FROM kiosks ORDER BY id');
  }

  setKioskPosQr(id: string, qr: string): void {
    const res = this.c.db.prepare(`UPDATE kiosks SET pos_qr = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(qr, id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  /** The highest kiosk revision: changes after it are found with kiosksChangedAfter. */
  kioskRevision(): number {
    return (this.c.db.prepare('SELECT COALESCE(MAX(revision), 0) AS r FROM kiosks').get() as { r: number }).r;
  }

  kiosksChangedAfter(revision: number): Kiosk[] {
    return this.c.many(kioskFromRow, 'SELECT * FROM kiosks WHERE revision > ? ORDER BY revision', revision);
  }

  /** Changes the kiosk's payment model (the caller validated model and mode). */
  setKioskModel(id: string, model: PaymentModelName, mode: string | null): void {
    const res = this.c.db.prepare(`UPDATE kiosks SET model = ?, model_mode = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(model, mode, id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  setKioskStore(id: string, storeExternalId: string): void {
    checkStoreExternalId(storeExternalId);
    const res = this.c.db.prepare(`UPDATE kiosks SET store_external_id = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(storeExternalId, id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  /** New token (returned once); the old one stops working at once. */
  rotateKioskToken(id: string): string {
    const token = newKioskToken();
    // a new revision: the running relay notices within a tick and drops the old token's link
    const res = this.c.db.prepare(`UPDATE kiosks SET token_hash = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(hashToken(token), id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
    return token;
  }
}
