import type { KioskStore } from '../api.js';
import type { PaymentModelName } from '../../../protocol/messages.js';
import { kioskFromRow } from '../rows.js';
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
import { isUniqueViolation, type PgConn } from './conn.js';

/** Held while a kiosk revision is taken and until commit: revisions then commit in their order. */
const REVISION_LOCK = `SELECT pg_advisory_xact_lock(hashtext('qrkiosk kiosk revision ' || current_schema()))`;
const NEXT_REVISION = '(SELECT COALESCE(MAX(revision), 0) + 1 FROM kiosks)';

export class PgKiosks implements KioskStore {
  constructor(private readonly c: PgConn) {}

  /** fn on this module bound to a transaction: the caller's when there is one, else a new one. */
  private atomic<T>(fn: (tx: PgKiosks) => Promise<T>): Promise<T> {
    return this.c.atomic((c) => fn(c === this.c ? this : new PgKiosks(c)));
  }

  async addKiosk(input: AddKioskInput, at = Date.now()): Promise<AddedKiosk> {
    const generation = checkKioskInput(input);
    const token = newKioskToken();
    const posKey = newPosKey();
    return this.atomic(async (tx) => {
      if (await tx.getKiosk(input.id)) throw new StoreError(`kiosk "${input.id}" already exists`);
      if (await tx.getKioskByPos(input.posExternalId)) {
        throw new StoreError(`POS external id "${input.posExternalId}" already belongs to another kiosk`);
      }
      try {
        await tx.c.run(
          `INSERT INTO kiosks (id, token_hash, pos_external_id, pos_key, payment_model, response_generation, pos_qr, created_at,
             model, model_mode, store_external_id)
           VALUES ($1, $2, $3, $4, 'unattended', $5, $6, $7, $8, $9, $10)`,
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
      } catch (err) {
        // another instance added the same kiosk or POS between our check and our insert
        if (isUniqueViolation(err)) {
          throw new StoreError(`kiosk "${input.id}" or POS external id "${input.posExternalId}" already exists`);
        }
        throw err;
      }
      return { token, posKey, posPath: posPath(input.posExternalId, posKey), kiosk: (await tx.getKiosk(input.id))! };
    });
  }

  getKiosk(id: string): Promise<Kiosk | undefined> {
    return this.c.one(kioskFromRow, 'SELECT * FROM kiosks WHERE id = $1', id);
  }

  getKioskByTokenHash(tokenHash: string): Promise<Kiosk | undefined> {
    return this.c.one(kioskFromRow, 'SELECT * FROM kiosks WHERE token_hash = $1', tokenHash);
  }

  getKioskByPos(posExternalId: string): Promise<Kiosk | undefined> {
    return this.c.one(kioskFromRow, 'SELECT * FROM kiosks WHERE pos_external_id = $1', posExternalId);
  }

  listKiosks(): Promise<Kiosk[]> {
    return this.c.many(kioskFromRow, 'SELECT * FROM kiosks ORDER BY id');
  }

  /** Every change a kiosk must see takes the next revision, under a lock so revisions commit in order. */
  private async bumpRevision(id: string, set: string, ...params: unknown[]): Promise<void> {
    const changed = await this.c.atomic(async (c) => {
      await c.run(REVISION_LOCK);
      return c.run(`UPDATE kiosks SET ${set}, revision = ${NEXT_REVISION} WHERE id = $1`, id, ...params);
    });
    if (changed === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  setKioskPosQr(id: string, qr: string): Promise<void> {
    return this.bumpRevision(id, 'pos_qr = $2', qr);
  }

  /** The highest kiosk revision: changes after it are found with kiosksChangedAfter. */
  async kioskRevision(): Promise<number> {
    return (await this.c.rows('SELECT COALESCE(MAX(revision), 0) AS r FROM kiosks'))[0]!.r as number;
  }

  kiosksChangedAfter(revision: number): Promise<Kiosk[]> {
    return this.c.many(kioskFromRow, 'SELECT * FROM kiosks WHERE revision > $1 ORDER BY revision', revision);
  }

  setKioskModel(id: string, model: PaymentModelName, mode: string | null): Promise<void> {
    return this.bumpRevision(id, 'model = $2, model_mode = $3', model, mode);
  }

  async setKioskStore(id: string, storeExternalId: string): Promise<void> {
    checkStoreExternalId(storeExternalId);
    return this.bumpRevision(id, 'store_external_id = $2', storeExternalId);
  }

  async rotateKioskToken(id: string): Promise<string> {
    const token = newKioskToken();
    // a new revision: every running instance notices within a tick and drops the old token's link
    await this.bumpRevision(id, 'token_hash = $2', hashToken(token));
    return token;
  }
}
