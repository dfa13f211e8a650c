// Errors and small helpers shared by the sandbox's modules (core and one module per QR model), so
// none of them imports another's internals.

/** A Mercado Pago API error: the HTTP status and the JSON body MP would send. */
export class MpApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body.message === 'string' ? body.message : `HTTP ${status}`);
  }
}

/** A misuse of the customer/inspection API (unknown checkout, bad QR...). */
export class SandboxError extends Error {
  override name = 'SandboxError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The legacy APIs' error body: {message, error, status, cause[]}. */
export function mpError(
  status: number,
  error: string,
  message: string,
  cause: { code: string | number; description: string }[] = [],
): MpApiError {
  return new MpApiError(status, { message, error, status, cause });
}

/**
 * The Orders API's error body: {errors: [{code, message, details[]}]} (MP's published "possible
 * errors" pages). `message` is repeated at the top so logs of generic HTTP clients show it.
 */
export function ordersError(status: number, code: string, message: string, details: string[] = []): MpApiError {
  return new MpApiError(status, { errors: [{ code, message, details }], message });
}

export const nowIso = (): string => new Date().toISOString();

export function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

export function numericId(raw: unknown): number | undefined {
  const s = String(raw ?? '');
  if (!/^\d{1,15}$/.test(s)) return undefined;
  return Number(s);
}

export function truncate(text: string, max: number): string {
  return Array.from(text).slice(0, max).join('');
}

/** Inspection logs keep the latest entries only, so a long-running `qrkiosk sandbox` stays bounded. */
export const LOG_CAP = 10_000;
export function pushCapped<T>(log: T[], item: T): void {
  log.push(item);
  if (log.length > LOG_CAP) log.splice(0, log.length - LOG_CAP);
}

/** Stable JSON (sorted keys) to compare request bodies sent under one idempotency key. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => v[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}
