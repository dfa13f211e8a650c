import { MpConflictError, MpError } from '../mercadopago/errors.js';
import type { MercadoPagoClient } from '../mercadopago/client.js';
import type { MpPos } from '../mercadopago/types.js';
import type { RelayConfig } from './config.js';
import { modelLabel } from './models/modes.js';
import { posUrl, type Kiosk, type RelayStore } from './store/index.js';

// `qrkiosk relay provision <kiosk>`: makes the kiosk's store and point of sale exist at Mercado
// Pago the way its payment model needs them (a POS url only for the unattended model, fixed amount
// always), and stores the POS sticker's QR for the kiosk's screen. Idempotent: what exists is found
// and only what differs is changed, so a second run reports "found" for everything and changes
// nothing. Every row of the report says what was created, found or changed.

export type ProvisionAction = 'created' | 'found' | 'changed' | 'stored' | 'unchanged' | 'warning';

export interface ProvisionRow {
  what: string;
  action: ProvisionAction;
  detail: string;
}

export interface ProvisionOptions {
  storeExternalId?: string;
  storeName?: string;
  posName?: string;
  category?: number;
}

export class ProvisionError extends Error {
  override name = 'ProvisionError';
  constructor(
    message: string,
    readonly rows: ProvisionRow[],
  ) {
    super(message);
  }
}

const EXTERNAL_ID = /^[A-Za-z0-9]{1,39}$/;

/** Checks what can be checked before any call, so a bad id never reaches Mercado Pago. */
export function checkProvisionInput(kiosk: Kiosk, opts: ProvisionOptions): void {
  if (!EXTERNAL_ID.test(kiosk.posExternalId)) {
    throw new ProvisionError(`POS external id "${kiosk.posExternalId}" must be letters and digits only, fewer than 40 (Mercado Pago's rule)`, []);
  }
  const store = opts.storeExternalId ?? kiosk.storeExternalId;
  if (store !== undefined && store !== null && !EXTERNAL_ID.test(store)) {
    throw new ProvisionError(`store external id "${store}" must be letters and digits only, fewer than 40, e.g. STORE01`, []);
  }
  if (opts.posName !== undefined && (opts.posName.length === 0 || opts.posName.length > 44)) {
    throw new ProvisionError(`--pos-name must be 1 to 44 characters (Mercado Pago caps POS names below 45)`, []);
  }
}

export async function provisionKiosk(
  mp: Pick<MercadoPagoClient, 'findPos' | 'createPos' | 'updatePos' | 'createStore'>,
  config: RelayConfig,
  store: RelayStore,
  kiosk: Kiosk,
  opts: ProvisionOptions = {},
): Promise<ProvisionRow[]> {
  checkProvisionInput(kiosk, opts);
  const rows: ProvisionRow[] = [];
  const unattended = kiosk.paymentModel === 'unattended';
  const url = unattended ? posUrl(config.publicUrl, kiosk) : undefined;
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw new ProvisionError(explainProvisionError(err, what, kiosk), rows);
    }
  };

  const found = (await step('finding the POS', () => mp.findPos({ external_id: kiosk.posExternalId }))).results[0];
  let pos: MpPos;
  if (found) {
    rows.push({ what: `POS ${kiosk.posExternalId}`, action: 'found', detail: `id ${found.id}${found.external_store_id ? `, store ${found.external_store_id}` : ''}` });
    const patch: { url?: string; fixed_amount?: boolean } = {};
    if (!found.fixed_amount) patch.fixed_amount = true;
    if (url !== undefined && found.url !== url) patch.url = url;
    if (Object.keys(patch).length > 0) {
      pos = await step('updating the POS', () => mp.updatePos(found.id, patch));
      rows.push({
        what: `POS ${kiosk.posExternalId}`,
        action: 'changed',
        detail: [patch.url ? `url now ${patch.url}` : '', patch.fixed_amount ? 'fixed_amount now true' : ''].filter(Boolean).join('; '),
      });
    } else pos = found;
    if (!unattended && found.url) {
      rows.push({
        what: `POS ${kiosk.posExternalId}`,
        action: 'warning',
        detail: `it still has the unattended url ${found.url}: Mercado Pago may keep asking it; create a new POS for the ${kiosk.paymentModel} model if customers see "waiting"`,
      });
    }
  } else {
    const storeExternalId = opts.storeExternalId ?? kiosk.storeExternalId ?? undefined;
    if (!storeExternalId) {
      throw new ProvisionError('--store <storeExternalId> is required to create the POS: letters and digits, e.g. --store STORE01', rows);
    }
    try {
      await mp.createStore(config.mercadopago.collectorId, { name: opts.storeName ?? storeExternalId, external_id: storeExternalId });
      rows.push({ what: `store ${storeExternalId}`, action: 'created', detail: opts.storeName ?? storeExternalId });
    } catch (err) {
      if (!(err instanceof MpConflictError)) throw new ProvisionError(explainProvisionError(err, 'creating the store', kiosk), rows);
      rows.push({ what: `store ${storeExternalId}`, action: 'found', detail: 'already at Mercado Pago' });
    }
    pos = await step('creating the POS', () =>
      mp.createPos({
        name: opts.posName ?? `qrkiosk ${kiosk.id}`.slice(0, 44),
        fixed_amount: true,
        external_store_id: storeExternalId,
        external_id: kiosk.posExternalId,
        ...(url !== undefined ? { url } : {}),
        ...(opts.category !== undefined ? { category: opts.category } : {}),
      }),
    );
    rows.push({ what: `POS ${kiosk.posExternalId}`, action: 'created', detail: `id ${pos.id}${url ? `, url ${url}` : ', no url'}` });
  }

  const storeId = pos.external_store_id ?? opts.storeExternalId;
  if (storeId && storeId !== kiosk.storeExternalId && EXTERNAL_ID.test(storeId)) {
    await store.setKioskStore(kiosk.id, storeId);
    rows.push({ what: `kiosk ${kiosk.id}`, action: 'stored', detail: `store ${storeId}` });
  }
  if (pos.qr_code) {
    if (pos.qr_code !== kiosk.posQr) {
      await store.setKioskPosQr(kiosk.id, pos.qr_code);
      rows.push({ what: `kiosk ${kiosk.id}`, action: 'stored', detail: 'POS QR (sent to the kiosk now if it is connected)' });
    } else rows.push({ what: `kiosk ${kiosk.id}`, action: 'unchanged', detail: 'POS QR' });
  } else {
    rows.push({
      what: `kiosk ${kiosk.id}`,
      action: 'warning',
      detail: `Mercado Pago did not return the QR text: decode the sticker${pos.qr?.image ? ` (${pos.qr.image})` : ''} with zbarimg and run qrkiosk relay kiosk set-qr ${kiosk.id} '<payload>'`,
    });
  }
  rows.push({ what: `kiosk ${kiosk.id}`, action: 'unchanged', detail: `payment model ${modelLabel(kiosk.paymentModel, kiosk.modelMode)}` });
  return rows;
}

/** Mercado Pago's answer in plain words, with the fix. */
export function explainProvisionError(err: unknown, doing: string, kiosk: Kiosk): string {
  if (!(err instanceof MpError)) return `${doing} failed: ${(err as Error).message}`;
  const code = (err.code ?? '').toUpperCase();
  const base = `${doing}: Mercado Pago answered ${err.status ?? 'nothing'}${err.code ? ` (${err.code})` : ''}`;
  if (err.status === 401) return `${base}: the access token is wrong or expired; copy it again from Your integrations > Credentials`;
  if (err.status === 403 && kiosk.paymentModel === 'unattended') {
    return `${base}: this account or host is not enabled for the unattended model (a POS url needs Mercado Pago's commercial team to enable your relay's host). Without that agreement, use the Orders API: qrkiosk relay kiosk set-model ${kiosk.id} orders, then provision again`;
  }
  if (err.status === 403) return `${base}: the access token may not manage stores and POS; use the seller's own production credentials`;
  if (code === 'INVALID_URL' || code === 'URL_TOO_LONG') return `${base}: the POS url is not accepted; check publicUrl (https, under 200 characters)`;
  if (code === 'INVALID_EXTERNAL_ID' || code === 'EXTERNAL_ID_TOO_LONG') return `${base}: the POS external id must be letters and digits, fewer than 40`;
  if (code === 'INEXISTENT_EXTERNAL_STORE_ID' || code === 'EXTERNAL_STORE_ID_NOT_MATCH') return `${base}: the store does not exist or differs; give --store with the store's external id`;
  if (code === 'FIXED_AMOUNT_FALSE') return `${base}: a POS with a url must have fixed_amount true`;
  if (code === 'INVALID_CATEGORY' || code === 'UNKNOWN_MCC') return `${base}: --category is not a merchant category Mercado Pago knows for this site`;
  if (err.status === 409) return `${base}: the POS external id is taken by another POS of this account`;
  if (err.status !== undefined && err.status >= 500) return `${base}: Mercado Pago is failing right now; run the same command again later (it is safe to repeat)`;
  return `${base}: ${err.message}`;
}
