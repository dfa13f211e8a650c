// What a resource id in a notification must look like, per topic, checked BEFORE the id goes
// anywhere near a Mercado Pago call or a log line. Unchecked, `..` became an authenticated
// `GET /` on the API's base URL and a 15,000-digit id filled the logs.
//
// To handle a new topic, add its rule here (keyed by the normalised topic name used in
// relay/notifications.ts): nothing else needs to know.

export interface IdRule {
  pattern: RegExp;
  /** what a valid id looks like, for the refusal message */
  looksLike: string;
}

/** merchant_orders and payments: positive 64-bit integers, written in decimal. */
export const MP_NUMERIC_ID: IdRule = { pattern: /^[1-9][0-9]{0,18}$/, looksLike: 'a Mercado Pago numeric id (digits only, e.g. 123456789)' };

/**
 * Orders API orders: uppercase letters and digits (ULID-like `01JE48XZBYRK6W22V7DFQRABEV`, test
 * ids `ORDTST01…`). Lowercase is accepted too: older SDKs lowercased ids in webhooks.
 */
export const ORDERS_API_ID: IdRule = { pattern: /^[A-Za-z0-9]{1,64}$/, looksLike: 'an Orders API order id (letters and digits, e.g. 01JE48XZBYRK6W22V7DFQRABEV)' };

/** Topics we act on, by normalised name. */
export const ID_RULES: Readonly<Record<string, IdRule>> = {
  merchant_order: MP_NUMERIC_ID,
  payment: MP_NUMERIC_ID,
  order: ORDERS_API_ID,
};

/** Ids of topics we do not act on are only stored: bounded and printable is all we ask. */
const ANY_ID: IdRule = { pattern: /^[A-Za-z0-9_.:-]{1,64}$/, looksLike: 'letters, digits, "_", "-", "." or ":" (at most 64)' };

export type IdCheck = { ok: true } | { ok: false; reason: string };

/** `topic` is the normalised topic (null for one we do not handle). */
export function checkResourceId(topic: string | null, id: string | null): IdCheck {
  if (id === null || id === '') return topic ? { ok: false, reason: `no resource id for topic ${topic}` } : { ok: true };
  const rule = (topic && ID_RULES[topic]) || ANY_ID;
  if (rule.pattern.test(id)) return { ok: true };
  return { ok: false, reason: `resource id ${printableId(id)} is not ${rule.looksLike}` };
}

/** An id (or anything a client sent) cut short and made printable, for logs and messages. */
export function printableId(id: string, max = 32): string {
  const clean = id.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > max ? `${clean.slice(0, max)}…(${id.length} chars)` : clean);
}
