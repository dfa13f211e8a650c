// Mercado Pago's flavour of the EMVCo merchant-presented QR. The merchant account information lives
// in template 43 (GUI "com.mercadolibre"), which is how a wallet knows the QR belongs to a Mercado
// Pago collector; the point of sale is identified by the terminal label (62/07 = POS external_id).
//
// Money crosses into this module as integer minor units and leaves as the EMVCo decimal string in
// tag 54 ("5.00" BRL, "1500" CLP), converted exactly by core/money.ts.

import { CURRENCIES, MoneyError, parseAmount, toDecimalString, type Currency } from '../core/money.js';
import { EmvError, decodeEmv, encodeEmv, findField, charLength, type EmvField, type EmvInputField } from './tlv.js';

/** Globally unique identifier Mercado Pago uses in tag 43 sub 00 (compared case-insensitively). */
export const MERCADOPAGO_GUI = 'com.mercadolibre';
/** How Mercado Pago itself writes the GUI in the qr_data its APIs return. */
export const MERCADOPAGO_GUI_UPPER = 'COM.MERCADOLIBRE';
/** Pix merchant account template (Brazil): tag 26, GUI "br.gov.bcb.pix" (any case), 25 = URL. */
export const PIX_TEMPLATE_ID = '26';
export const PIX_GUI = 'br.gov.bcb.pix';
/** Host of the Pix URL Mercado Pago puts in 26/25 of an order's qr_data. */
export const MERCADOPAGO_PIX_HOST = 'pix-qr.mercadopago.com';
/** Merchant account information template id Mercado Pago uses. */
export const MERCADOPAGO_TEMPLATE_ID = '43';

/**
 * Maximum lengths, in characters. These are the EMVCo MPM limits; we enforce them when building so
 * a too-long store name fails loudly at setup instead of producing a QR some wallets refuse.
 * The terminal label (62/07) is "up to 25" in EMVCo MPM v1.1; POS external_ids may be up to 39
 * characters at Mercado Pago, so callers with longer ids must map them to a shorter label.
 */
export const MP_QR_LIMITS = {
  merchantName: 25,
  merchantCity: 15,
  referenceLabel: 25,
  terminalLabel: 25,
  purpose: 25,
  collectorId: 20,
  sponsorId: 20,
  templateVersion: 2,
  /** tag 54 is at most 13 characters including the decimal point */
  amount: 13,
} as const;

export type QrInitiation = 'static' | 'dynamic';

export interface MercadoPagoQrInput {
  /** Mercado Pago user id of the seller (the collector) */
  collectorId: number | string;
  /** integrator account id (43/04), optional */
  sponsorId?: number | string;
  /** 43/02, default "1" */
  templateVersion?: string;
  /** merchant category code (52), 4 digits; default "0000" (no category) */
  mcc?: string;
  currency: Currency;
  /** ISO 3166-1 alpha-2 (58); defaults to the currency's country */
  country?: string;
  /**
   * Integer minor units. Present = offline dynamic QR (01=12) for exactly this amount;
   * absent = static POS QR (01=11), where the amount comes from the seller's server at scan time.
   */
  amountMinor?: number;
  merchantName: string;
  merchantCity: string;
  /** 62/05 */
  referenceLabel?: string;
  /** 62/07: the POS external_id */
  terminalLabel?: string;
  /** 62/08 purpose of transaction */
  purpose?: string;
}

export interface MercadoPagoQrData {
  initiation: QrInitiation;
  /**
   * 43/03. Present on POS stickers and offline dynamic QRs; absent on the qr_data Mercado Pago
   * returns for an order (43/06 or the Pix URL names the order instead).
   */
  collectorId?: string;
  /** 43/06: the 36-character UUID of a Mercado Pago order (qr_data of the online APIs) */
  orderUuid?: string;
  /** 26/25 of a Pix template pointing at Mercado Pago, e.g. "pix-qr.mercadopago.com/instore/o/v2/<uuid>" */
  pixUrl?: string;
  sponsorId?: string;
  templateVersion?: string;
  mcc: string;
  currency: Currency;
  country: string;
  /** integer minor units, only on QRs carrying tag 54 */
  amountMinor?: number;
  merchantName: string;
  merchantCity: string;
  referenceLabel?: string;
  terminalLabel?: string;
  purpose?: string;
  /** the verified CRC (uppercase hex) */
  crc: string;
  /** the full decoded tree, for fields this module does not model */
  fields: EmvField[];
}

const DIGITS = /^\d+$/;

function checkText(value: string | undefined, label: string, path: string, max: number, required: boolean): void {
  if (value === undefined) {
    if (required) throw new EmvError('MISSING_FIELD', `${label} (${path}) is required`, { path });
    return;
  }
  const len = charLength(value);
  if (len === 0) {
    throw new EmvError('EMPTY_VALUE', `${label} (${path}) is empty; omit it or give a value`, { path });
  }
  if (len > max) {
    throw new EmvError(
      'VALUE_TOO_LONG',
      `${label} (${path}) "${value}" is ${len} characters; EMVCo allows at most ${max}, shorten it`,
      { path },
    );
  }
}

function checkDigits(value: string, label: string, path: string, max: number): void {
  if (!DIGITS.test(value)) {
    throw new EmvError('INVALID_VALUE', `${label} (${path}) must be digits only, got "${value}"`, { path });
  }
  checkText(value, label, path, max, true);
}

/** Builds the QR string (with CRC) for a Mercado Pago POS sticker or an offline dynamic QR. */
export function buildMercadoPagoQr(input: MercadoPagoQrInput): string {
  const info = CURRENCIES[input.currency];
  if (!info) throw new EmvError('INVALID_VALUE', `unknown currency "${String(input.currency)}"`, { path: '53' });

  const collectorId = String(input.collectorId);
  checkDigits(collectorId, 'collector id', '43.03', MP_QR_LIMITS.collectorId);
  const sponsorId = input.sponsorId === undefined ? undefined : String(input.sponsorId);
  if (sponsorId !== undefined) checkDigits(sponsorId, 'sponsor id', '43.04', MP_QR_LIMITS.sponsorId);
  const templateVersion = input.templateVersion ?? '1';
  checkText(templateVersion, 'template version', '43.02', MP_QR_LIMITS.templateVersion, true);

  const mcc = input.mcc ?? '0000';
  if (!/^\d{4}$/.test(mcc)) {
    throw new EmvError('INVALID_VALUE', `merchant category code (52) must be 4 digits, got "${mcc}"`, { path: '52' });
  }
  const country = input.country ?? info.country;
  if (!/^[A-Z]{2}$/.test(country)) {
    throw new EmvError('INVALID_VALUE', `country (58) must be 2 uppercase letters, got "${country}"`, { path: '58' });
  }
  checkText(input.merchantName, 'merchant name', '59', MP_QR_LIMITS.merchantName, true);
  checkText(input.merchantCity, 'merchant city', '60', MP_QR_LIMITS.merchantCity, true);
  checkText(input.referenceLabel, 'reference label', '62.05', MP_QR_LIMITS.referenceLabel, false);
  checkText(input.terminalLabel, 'terminal label', '62.07', MP_QR_LIMITS.terminalLabel, false);
  checkText(input.purpose, 'purpose of transaction', '62.08', MP_QR_LIMITS.purpose, false);

  let amount: string | undefined;
  if (input.amountMinor !== undefined) {
    if (!Number.isSafeInteger(input.amountMinor) || input.amountMinor <= 0) {
      throw new EmvError(
        'INVALID_VALUE',
        `amount (54) must be a positive whole number of minor units, got ${input.amountMinor}`,
        { path: '54' },
      );
    }
    amount = toDecimalString(input.amountMinor, input.currency);
    checkText(amount, 'amount', '54', MP_QR_LIMITS.amount, true);
  }

  const account: EmvInputField[] = [
    { id: '00', value: MERCADOPAGO_GUI },
    { id: '02', value: templateVersion },
    { id: '03', value: collectorId },
  ];
  if (sponsorId !== undefined) account.push({ id: '04', value: sponsorId });

  const additional: EmvInputField[] = [];
  if (input.referenceLabel !== undefined) additional.push({ id: '05', value: input.referenceLabel });
  if (input.terminalLabel !== undefined) additional.push({ id: '07', value: input.terminalLabel });
  if (input.purpose !== undefined) additional.push({ id: '08', value: input.purpose });

  const fields: EmvInputField[] = [
    { id: '00', value: '01' },
    { id: '01', value: amount === undefined ? '11' : '12' },
    { id: MERCADOPAGO_TEMPLATE_ID, children: account },
    { id: '52', value: mcc },
    { id: '53', value: info.numeric },
  ];
  if (amount !== undefined) fields.push({ id: '54', value: amount });
  fields.push(
    { id: '58', value: country },
    { id: '59', value: input.merchantName },
    { id: '60', value: input.merchantCity },
  );
  if (additional.length > 0) fields.push({ id: '62', children: additional });
  return encodeEmv(fields);
}

function currencyFromNumeric(numeric: string): Currency {
  for (const [code, info] of Object.entries(CURRENCIES)) {
    if (info.numeric === numeric) return code as Currency;
  }
  throw new EmvError(
    'INVALID_VALUE',
    `currency (53) "${numeric}" is not one Mercado Pago sells in (${Object.values(CURRENCIES)
      .map((c) => c.numeric)
      .join(', ')})`,
    { path: '53' },
  );
}

function required(fields: EmvField[], ...path: string[]): string {
  const f = findField(fields, ...path);
  if (!f) {
    const p = path.join('.');
    throw new EmvError('MISSING_FIELD', `QR has no field ${p}; it is required in a Mercado Pago QR`, { path: p });
  }
  return f.value;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The order UUID at the end of a Mercado Pago Pix URL ("…/instore/o/v2/<uuid>"), if any. */
function uuidOfPixUrl(url: string): string | undefined {
  const last = url.split(/[?#]/)[0]!.split('/').filter(Boolean).pop();
  return last !== undefined && UUID.test(last) ? last.toLowerCase() : undefined;
}

function isMercadoPagoPixUrl(url: string): boolean {
  const host = url.replace(/^https?:\/\//i, '').split('/')[0]!.toLowerCase();
  return host === MERCADOPAGO_PIX_HOST;
}

/**
 * Verifies (CRC, structure) and reads a Mercado Pago QR: a POS sticker (43/03 collector + 62/07
 * POS), an offline dynamic QR (43/03 + 54 amount + 62/05 reference), or the qr_data Mercado Pago
 * returns for an order (43 with 06 = order UUID and no collector, no amount; in Brazil a Pix
 * template in 26 whose URL names the same order, alongside or instead of 43). The GUIs are
 * compared case-insensitively: Mercado Pago writes "COM.MERCADOLIBRE" in its qr_data and
 * "com.mercadolibre" in its offline guide. Lengths are not re-checked against MP_QR_LIMITS: a
 * scanner should accept what a wallet accepts and only the builder is strict.
 */
export function parseMercadoPagoQr(qr: string): MercadoPagoQrData {
  const fields = decodeEmv(qr);
  const initiationValue = required(fields, '01');
  if (initiationValue !== '11' && initiationValue !== '12') {
    throw new EmvError('INVALID_VALUE', `point of initiation (01) must be 11 or 12, got "${initiationValue}"`, {
      path: '01',
    });
  }
  const opt = (...path: string[]): string | undefined => findField(fields, ...path)?.value;

  const gui = opt(MERCADOPAGO_TEMPLATE_ID, '00');
  if (gui !== undefined && gui.toLowerCase() !== MERCADOPAGO_GUI) {
    throw new EmvError('INVALID_VALUE', `template 43 belongs to "${gui}", not ${MERCADOPAGO_GUI}`, { path: '43.00' });
  }
  let pixUrl: string | undefined;
  if (opt(PIX_TEMPLATE_ID, '00')?.toLowerCase() === PIX_GUI) {
    const url = opt(PIX_TEMPLATE_ID, '25');
    if (url !== undefined && isMercadoPagoPixUrl(url)) pixUrl = url;
  }
  if (gui === undefined && pixUrl === undefined) {
    throw new EmvError(
      'MISSING_FIELD',
      `QR has no Mercado Pago account template (43 with 00=${MERCADOPAGO_GUI}) nor a Pix template pointing at ${MERCADOPAGO_PIX_HOST}; it is not a Mercado Pago QR`,
      { path: '43.00' },
    );
  }

  const collectorId = opt('43', '03');
  if (collectorId !== undefined && !DIGITS.test(collectorId)) {
    throw new EmvError('INVALID_VALUE', `collector id (43.03) must be digits, got "${collectorId}"`, {
      path: '43.03',
    });
  }
  const uuid43 = opt('43', '06');
  if (uuid43 !== undefined && !UUID.test(uuid43)) {
    throw new EmvError('INVALID_VALUE', `order UUID (43.06) must be a 36-character UUID, got "${uuid43}"`, {
      path: '43.06',
    });
  }
  const uuidPix = pixUrl === undefined ? undefined : uuidOfPixUrl(pixUrl);
  if (uuid43 !== undefined && uuidPix !== undefined && uuid43.toLowerCase() !== uuidPix) {
    throw new EmvError(
      'INVALID_VALUE',
      `the Pix URL (26.25) names order ${uuidPix} but 43.06 names ${uuid43}; the QR is inconsistent`,
      { path: '26.25' },
    );
  }
  const orderUuid = uuid43?.toLowerCase() ?? uuidPix;
  if (collectorId === undefined && orderUuid === undefined && pixUrl === undefined) {
    throw new EmvError(
      'MISSING_FIELD',
      'QR has no field 43.03 (collector id) nor 43.06 (order UUID): it names neither a seller nor an order',
      { path: '43.03' },
    );
  }

  const currency = currencyFromNumeric(required(fields, '53'));
  const amountText = opt('54');
  let amountMinor: number | undefined;
  if (amountText !== undefined) {
    try {
      amountMinor = parseAmount(amountText, currency);
    } catch (err) {
      const why = err instanceof MoneyError ? err.message : String(err);
      throw new EmvError('INVALID_VALUE', `amount (54) "${amountText}" is not a valid ${currency} amount: ${why}`, {
        path: '54',
      });
    }
    if (amountMinor <= 0) {
      throw new EmvError('INVALID_VALUE', `amount (54) "${amountText}" must be positive`, { path: '54' });
    }
  }

  const data: MercadoPagoQrData = {
    initiation: initiationValue === '12' ? 'dynamic' : 'static',
    mcc: required(fields, '52'),
    currency,
    country: required(fields, '58'),
    merchantName: required(fields, '59'),
    merchantCity: required(fields, '60'),
    crc: required(fields, '63').toUpperCase(),
    fields,
  };
  const assign = <K extends keyof MercadoPagoQrData>(key: K, value: MercadoPagoQrData[K] | undefined): void => {
    if (value !== undefined) data[key] = value;
  };
  assign('collectorId', collectorId);
  assign('orderUuid', orderUuid);
  assign('pixUrl', pixUrl);
  assign('sponsorId', opt('43', '04'));
  assign('templateVersion', opt('43', '02'));
  assign('amountMinor', amountMinor);
  assign('referenceLabel', opt('62', '05'));
  assign('terminalLabel', opt('62', '07'));
  assign('purpose', opt('62', '08'));
  return data;
}

export interface MercadoPagoOrderQrInput {
  /** the order's UUID (36 characters), in 43/06 and at the end of the Pix URL */
  orderUuid: string;
  currency: Currency;
  merchantName: string;
  merchantCity: string;
  /** 52, default "0000" */
  mcc?: string;
  /** 58, default the currency's country */
  country?: string;
  /** 43/02, default "3" as in Mercado Pago's samples */
  templateVersion?: string;
  /** 62/05; Mercado Pago masks it as "***" in its samples (the default) */
  referenceLabel?: string;
  /** 62/07: the POS external_id */
  terminalLabel?: string;
  /** the Pix template in 26 (default: only for BRL) */
  pix?: boolean;
  /** the Mercado Pago template in 43 (default true; false = Pix only) */
  mercadoPagoTemplate?: boolean;
}

/**
 * The qr_data Mercado Pago returns for an order (legacy /qrs and the Orders API): dynamic (01=12),
 * no amount (the app reads it online from the order), the order named by its UUID. Used by the
 * sandbox; the relay only ever decodes these.
 */
export function buildMercadoPagoOrderQr(input: MercadoPagoOrderQrInput): string {
  const info = CURRENCIES[input.currency];
  if (!info) throw new EmvError('INVALID_VALUE', `unknown currency "${String(input.currency)}"`, { path: '53' });
  if (!UUID.test(input.orderUuid)) {
    throw new EmvError('INVALID_VALUE', `order UUID must be 36 characters (8-4-4-4-12 hex), got "${input.orderUuid}"`, {
      path: '43.06',
    });
  }
  const mcc = input.mcc ?? '0000';
  if (!/^\d{4}$/.test(mcc)) {
    throw new EmvError('INVALID_VALUE', `merchant category code (52) must be 4 digits, got "${mcc}"`, { path: '52' });
  }
  checkText(input.merchantName, 'merchant name', '59', MP_QR_LIMITS.merchantName, true);
  checkText(input.merchantCity, 'merchant city', '60', MP_QR_LIMITS.merchantCity, true);
  const referenceLabel = input.referenceLabel ?? '***';
  checkText(referenceLabel, 'reference label', '62.05', MP_QR_LIMITS.referenceLabel, true);
  checkText(input.terminalLabel, 'terminal label', '62.07', MP_QR_LIMITS.terminalLabel, false);
  const withPix = input.pix ?? input.currency === 'BRL';
  const withMp = input.mercadoPagoTemplate ?? true;
  if (!withPix && !withMp) {
    throw new EmvError('MISSING_FIELD', 'an order QR needs the Mercado Pago template (43), the Pix one (26), or both', {
      path: '43',
    });
  }
  const fields: EmvInputField[] = [
    { id: '00', value: '01' },
    { id: '01', value: '12' },
  ];
  if (withPix) {
    fields.push({
      id: PIX_TEMPLATE_ID,
      children: [
        { id: '00', value: PIX_GUI },
        { id: '25', value: `${MERCADOPAGO_PIX_HOST}/instore/o/v2/${input.orderUuid}` },
      ],
    });
  }
  if (withMp) {
    fields.push({
      id: MERCADOPAGO_TEMPLATE_ID,
      children: [
        { id: '00', value: MERCADOPAGO_GUI_UPPER },
        { id: '02', value: input.templateVersion ?? '3' },
        { id: '06', value: input.orderUuid },
      ],
    });
  }
  const additional: EmvInputField[] = [{ id: '05', value: referenceLabel }];
  if (input.terminalLabel !== undefined) additional.push({ id: '07', value: input.terminalLabel });
  fields.push(
    { id: '52', value: mcc },
    { id: '53', value: info.numeric },
    { id: '58', value: input.country ?? info.country },
    { id: '59', value: input.merchantName },
    { id: '60', value: input.merchantCity },
    { id: '62', children: additional },
  );
  return encodeEmv(fields);
}
