// EMVCo merchant-presented mode TLV: every data object is "IDLLVALUE" where ID is 2 digits and LL is
// the 2-digit decimal length of VALUE. Templates (26-51, 62, 64, 80-99) hold nested TLV in VALUE.
// The payload must start with 00 (payload format indicator) and end with 63 (CRC-16 over everything
// before the CRC value, including the "6304" header itself).
//
// Lengths count CHARACTERS (Unicode code points), not bytes and not UTF-16 code units: a wallet that
// reads "6007Bogotá" must get the 7 letters, while the CRC is computed over the UTF-8 bytes.

import { crc16Hex } from './crc.js';

export type EmvErrorCode =
  | 'BAD_ID'
  | 'BAD_LENGTH'
  | 'TRUNCATED'
  | 'EMPTY_VALUE'
  | 'VALUE_TOO_LONG'
  | 'DUPLICATE_ID'
  | 'MISSING_PAYLOAD_FORMAT'
  | 'MISSING_CRC'
  | 'CRC_MISMATCH'
  | 'MISSING_FIELD'
  | 'INVALID_VALUE';

/** Every codec failure. `path` names the offending field ("62.07"), `code` is stable for tests/callers. */
export class EmvError extends Error {
  override name = 'EmvError';
  readonly code: EmvErrorCode;
  readonly path: string | undefined;
  /** only for CRC_MISMATCH */
  readonly expected: string | undefined;
  readonly found: string | undefined;

  constructor(
    code: EmvErrorCode,
    message: string,
    extra: { path?: string; expected?: string; found?: string } = {},
  ) {
    super(message);
    this.code = code;
    this.path = extra.path;
    this.expected = extra.expected;
    this.found = extra.found;
  }
}

/** What encode takes: a primitive (value) or a template (children), never both. */
export type EmvInputField = { id: string; value: string } | { id: string; children: EmvInputField[] };

/** What decode returns: the raw value always, plus the parsed children when the id is a template. */
export interface EmvField {
  id: string;
  value: string;
  children?: EmvField[];
}

const ID_RE = /^\d\d$/;
const LEN_RE = /^\d\d$/;

/** Length as EMVCo counts it: code points (so "á" is 1, an emoji is 1). */
export function charLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/**
 * Whether a data object is a template whose value must itself be TLV. `parent` is the enclosing
 * template id ('' at the top). Top level: 26-51 merchant account information, 62 additional data,
 * 64 language template, 80-99 unreserved templates. Inside 62: 50-99 payment-system templates.
 */
export function isTemplateId(id: string, parent = ''): boolean {
  const n = Number(id);
  if (parent === '') return (n >= 26 && n <= 51) || n === 62 || n === 64 || n >= 80;
  if (parent === '62') return n >= 50;
  return false;
}

function joinPath(prefix: string, id: string): string {
  return prefix ? `${prefix}.${id}` : id;
}

/** Encodes fields to "IDLLVALUE..." without a CRC; templates are encoded recursively. */
export function encodeTlv(fields: readonly EmvInputField[], pathPrefix = ''): string {
  const seen = new Set<string>();
  let out = '';
  for (const field of fields) {
    const path = joinPath(pathPrefix, field.id);
    if (!ID_RE.test(field.id)) {
      throw new EmvError('BAD_ID', `EMV field id "${field.id}" must be exactly 2 digits (at ${path})`, { path });
    }
    if (seen.has(field.id)) {
      throw new EmvError('DUPLICATE_ID', `EMV field ${path} appears twice; each id may appear once per level`, {
        path,
      });
    }
    seen.add(field.id);
    const value = 'children' in field ? encodeTlv(field.children, path) : field.value;
    const len = charLength(value);
    if (len === 0) {
      throw new EmvError('EMPTY_VALUE', `EMV field ${path} is empty; omit optional fields instead of sending ""`, {
        path,
      });
    }
    if (len > 99) {
      throw new EmvError('VALUE_TOO_LONG', `EMV field ${path} is ${len} characters; the format allows at most 99`, {
        path,
      });
    }
    out += field.id + String(len).padStart(2, '0') + value;
  }
  return out;
}

/**
 * A complete QR payload: `fields` must start with 00 and must not contain 63; "6304" + CRC is appended
 * here so that no caller can forget it or compute it over the wrong span.
 */
export function encodeEmv(fields: readonly EmvInputField[]): string {
  const first = fields[0];
  if (!first || first.id !== '00') {
    throw new EmvError('MISSING_PAYLOAD_FORMAT', 'EMV payload must start with field 00 (payload format indicator "01")', {
      path: '00',
    });
  }
  if (fields.some((f) => f.id === '63')) {
    throw new EmvError('INVALID_VALUE', 'do not pass field 63: encodeEmv appends the CRC itself', { path: '63' });
  }
  const body = encodeTlv(fields) + '6304';
  return body + crc16Hex(body);
}

export interface DecodeTlvOptions {
  /** path prefix for error messages and template detection ('' = top level) */
  path?: string;
  /** decode nested templates (default true) */
  nested?: boolean;
}

/**
 * Decodes "IDLLVALUE..." into fields without checking 00/63/CRC (use decodeEmv for a whole QR).
 * Throws EmvError naming the field and the character position of the first problem.
 */
export function decodeTlv(text: string, opts: DecodeTlvOptions = {}): EmvField[] {
  const prefix = opts.path ?? '';
  const nested = opts.nested ?? true;
  const chars = Array.from(text); // code points, so lengths are counted the EMVCo way
  const fields: EmvField[] = [];
  const seen = new Set<string>();
  let pos = 0;
  const where = (p: number): string => (prefix ? `in template ${prefix} at character ${p}` : `at character ${p}`);

  while (pos < chars.length) {
    if (chars.length - pos < 4) {
      throw new EmvError(
        'TRUNCATED',
        `EMV data truncated ${where(pos)}: "${chars.slice(pos).join('')}" is too short for an id and a length`,
        { path: prefix || undefined },
      );
    }
    const id = chars.slice(pos, pos + 2).join('');
    const lenText = chars.slice(pos + 2, pos + 4).join('');
    const path = joinPath(prefix, id);
    if (!ID_RE.test(id)) {
      throw new EmvError('BAD_ID', `EMV field id "${id}" ${where(pos)} is not 2 digits`, { path });
    }
    if (!LEN_RE.test(lenText)) {
      throw new EmvError('BAD_LENGTH', `EMV field ${path} ${where(pos)} has length "${lenText}", not 2 digits`, {
        path,
      });
    }
    const len = Number(lenText);
    if (len === 0) {
      throw new EmvError('BAD_LENGTH', `EMV field ${path} ${where(pos)} declares length 00; fields cannot be empty`, {
        path,
      });
    }
    const start = pos + 4;
    if (start + len > chars.length) {
      throw new EmvError(
        'TRUNCATED',
        `EMV field ${path} ${where(pos)} declares length ${len} but only ${chars.length - start} characters remain (truncated or mis-counted payload)`,
        { path },
      );
    }
    if (seen.has(id)) {
      throw new EmvError('DUPLICATE_ID', `EMV field ${path} appears twice ${where(pos)}`, { path });
    }
    seen.add(id);
    const value = chars.slice(start, start + len).join('');
    const field: EmvField = { id, value };
    if (nested && isTemplateId(id, prefix)) {
      field.children = decodeTlv(value, { path, nested });
    }
    fields.push(field);
    pos = start + len;
  }
  return fields;
}

/**
 * Decodes and verifies a whole QR payload: structure, 00 first with value "01", 63 last with 4 hex
 * digits, and the CRC. Returns all fields including 63.
 */
export function decodeEmv(text: string): EmvField[] {
  if (typeof text !== 'string' || text.length === 0) {
    throw new EmvError('MISSING_PAYLOAD_FORMAT', 'EMV payload is empty');
  }
  const fields = decodeTlv(text);
  const first = fields[0];
  if (!first || first.id !== '00') {
    throw new EmvError(
      'MISSING_PAYLOAD_FORMAT',
      `EMV payload must start with field 00 (payload format indicator), found ${first ? first.id : 'nothing'}`,
      { path: '00' },
    );
  }
  if (first.value !== '01') {
    throw new EmvError('INVALID_VALUE', `EMV field 00 must be "01", found "${first.value}"`, { path: '00' });
  }
  const last = fields[fields.length - 1]!;
  if (last.id !== '63') {
    throw new EmvError('MISSING_CRC', `EMV payload must end with field 63 (CRC), found ${last.id} last`, { path: '63' });
  }
  if (fields.filter((f) => f.id === '63').length > 1 || !/^[0-9A-Fa-f]{4}$/.test(last.value)) {
    throw new EmvError('MISSING_CRC', `EMV field 63 must be 4 hex digits, found "${last.value}"`, { path: '63' });
  }
  // The CRC value is 4 ASCII characters at the very end, so slicing UTF-16 units is exact here.
  const expected = crc16Hex(text.slice(0, -4));
  const found = last.value.toUpperCase();
  if (expected !== found) {
    throw new EmvError(
      'CRC_MISMATCH',
      `EMV CRC mismatch: computed ${expected} over the payload but field 63 says ${found} (payload altered, mis-scanned, or CRC computed over the wrong bytes)`,
      { path: '63', expected, found },
    );
  }
  return fields;
}

/** Finds a field by its path: findField(tree, '62', '07') is the terminal label. */
export function findField(fields: readonly EmvField[] | undefined, ...path: string[]): EmvField | undefined {
  let level = fields;
  let found: EmvField | undefined;
  for (const id of path) {
    found = level?.find((f) => f.id === id);
    if (!found) return undefined;
    level = found.children;
  }
  return found;
}
