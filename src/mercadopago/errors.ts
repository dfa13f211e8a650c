// Typed failures of the Mercado Pago API, so callers decide by class (retry later? fix config?
// give up?) instead of parsing messages. Every message names the endpoint and what to do next.

export interface MpErrorCause {
  code?: string | number;
  description?: string;
}

export interface MpErrorDetails {
  /** HTTP status; undefined when no response arrived (timeout, connection) */
  status?: number;
  /** the most specific code Mercado Pago gave: cause[0].code, else `error`, else `message` */
  code?: string;
  /** parsed JSON body (or raw text when it was not JSON) */
  body?: unknown;
  method: string;
  /** path (with query) relative to the base URL, e.g. "/v1/payments/123" */
  path: string;
  /** how many HTTP attempts were made before giving up */
  attempts?: number;
  cause?: unknown;
}

export class MpError extends Error {
  override name = 'MpError';
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly body: unknown;
  readonly method: string;
  readonly path: string;
  readonly attempts: number;
  /** every cause Mercado Pago listed (its `cause` array), for logs */
  readonly causes: MpErrorCause[];

  constructor(message: string, details: MpErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.code = details.code;
    this.body = details.body;
    this.method = details.method;
    this.path = details.path;
    this.attempts = details.attempts ?? 1;
    this.causes = causesOf(details.body);
  }

  /** "GET /v1/payments/1" */
  get endpoint(): string {
    return `${this.method} ${this.path}`;
  }
}

/** 400: the request is wrong; repeating it will fail the same way. */
export class MpBadRequestError extends MpError {
  override name = 'MpBadRequestError';
}
/** 401/403: the access token is invalid, expired, or lacks permission for this resource. */
export class MpUnauthorizedError extends MpError {
  override name = 'MpUnauthorizedError';
}
/** 404: no such resource for this account. */
export class MpNotFoundError extends MpError {
  override name = 'MpNotFoundError';
}
/** 409: conflicts with existing state (e.g. a POS external_id already in use). */
export class MpConflictError extends MpError {
  override name = 'MpConflictError';
}
/** 429 after retries ran out; retryAfterMs is what Mercado Pago asked for, when it said. */
export class MpRateLimitError extends MpError {
  override name = 'MpRateLimitError';
  readonly retryAfterMs: number | undefined;
  constructor(message: string, details: MpErrorDetails & { retryAfterMs?: number }) {
    super(message, details);
    this.retryAfterMs = details.retryAfterMs;
  }
}
/** 5xx after retries ran out. */
export class MpServerError extends MpError {
  override name = 'MpServerError';
}
/** No response within the timeout. For a POST the operation may still have happened. */
export class MpTimeoutError extends MpError {
  override name = 'MpTimeoutError';
}
/** The connection failed (DNS, refused, reset) before a response arrived. */
export class MpConnectionError extends MpError {
  override name = 'MpConnectionError';
}

function causesOf(body: unknown): MpErrorCause[] {
  if (!body || typeof body !== 'object') return [];
  // the Orders API answers {errors: [{code, message, details}]} instead of {cause: [...]}
  const errors = (body as { errors?: unknown }).errors;
  if (Array.isArray(errors)) {
    return errors
      .filter((e): e is { code?: unknown; message?: unknown } => !!e && typeof e === 'object')
      .map((e) => ({
        ...(typeof e.code === 'string' || typeof e.code === 'number' ? { code: e.code } : {}),
        ...(typeof e.message === 'string' ? { description: e.message } : {}),
      }));
  }
  const cause = (body as { cause?: unknown }).cause;
  if (Array.isArray(cause)) {
    return cause.filter((c): c is MpErrorCause => !!c && typeof c === 'object');
  }
  if (cause && typeof cause === 'object') return [cause as MpErrorCause];
  return [];
}

/**
 * The most specific code in an MP error body. cause[0].code wins because `error` is often a generic
 * "bad_request" while the cause carries the actionable number (e.g. 4292 = missing idempotency key).
 */
export function errorCodeOf(body: unknown): string | undefined {
  const first = causesOf(body)[0];
  if (first?.code !== undefined && first.code !== null && String(first.code) !== '') return String(first.code);
  if (body && typeof body === 'object') {
    const { error, message } = body as { error?: unknown; message?: unknown };
    if (typeof error === 'string' && error) return error;
    if (typeof message === 'string' && message) return message;
  }
  return undefined;
}

function describeBody(body: unknown): string {
  if (body && typeof body === 'object') {
    const b = body as { message?: unknown; error?: unknown };
    const first = causesOf(body)[0];
    const parts = [b.message, first?.description].filter((p): p is string => typeof p === 'string' && p !== '');
    if (parts.length) return [...new Set(parts)].join('; ');
    if (typeof b.error === 'string') return b.error;
  }
  if (typeof body === 'string' && body) return body.length > 200 ? `${body.slice(0, 200)}…` : body;
  return 'no details';
}

/** Builds the typed error for a non-2xx response. */
export function errorFromResponse(
  details: MpErrorDetails & { status: number; retryAfterMs?: number },
): MpError {
  const { status, method, path } = details;
  const code = details.code ?? errorCodeOf(details.body);
  const full = { ...details, code };
  const what = `Mercado Pago ${method} ${path} answered ${status}${code ? ` (${code})` : ''}: ${describeBody(details.body)}`;
  const tries = details.attempts && details.attempts > 1 ? ` after ${details.attempts} attempts` : '';
  if (status === 400) {
    return new MpBadRequestError(`${what}. Fix the request; sending it again unchanged will fail again.`, full);
  }
  if (status === 401 || status === 403) {
    return new MpUnauthorizedError(
      `${what}. Check the access token: it may be wrong, expired, revoked, a test token used against production data (or vice versa), or not belong to the collector that owns this resource.`,
      full,
    );
  }
  if (status === 404) {
    return new MpNotFoundError(
      `${what}. The resource does not exist for this account: check the id and that the access token belongs to its collector.`,
      full,
    );
  }
  if (status === 409) {
    return new MpConflictError(
      `${what}. It conflicts with something that already exists; fetch the existing resource instead of creating it again.`,
      full,
    );
  }
  if (status === 429) {
    const wait = details.retryAfterMs !== undefined ? ` (Mercado Pago asked to wait ${details.retryAfterMs} ms)` : '';
    return new MpRateLimitError(`${what}${tries}. Rate limited${wait}: slow down and try again later.`, full);
  }
  if (status >= 500) {
    return new MpServerError(
      `${what}${tries}. Mercado Pago is failing; try again later (check https://status.mercadopago.com).`,
      full,
    );
  }
  return new MpError(`${what}. Unexpected status.`, full);
}
