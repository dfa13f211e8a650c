import pg from 'pg';
import { StoreError } from '../types.js';

// How the relay's pool reads PostgreSQL's integers, so that a row from PostgreSQL maps to a
// record exactly as a row from SQLite does (the mappers are shared: ../rows.ts, ../fleet-rows.ts,
// ../recorder-rows.ts).
//
// pg returns int8 (BIGINT, COUNT(*)) and numeric (SUM of a bigint) as strings, because a JS number
// loses integers above 2^53. Every BIGINT here is an epoch in ms or an amount in minor units, far
// below 2^53, so the pool parses them to numbers, and REFUSES (throws) a value that would not be
// exact rather than round it: money is never a float. These parsers are given to our pool only
// (not set globally on the pg module) so another library's pool in the same process is untouched.

const INT8_OID = 20;
const NUMERIC_OID = 1700;

export function exactInteger(text: string): number {
  if (!/^-?\d+$/.test(text)) throw new StoreError(`PostgreSQL returned ${JSON.stringify(text)} where a whole number (ms or minor units) was expected`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new StoreError(`PostgreSQL returned ${text}, beyond what a JavaScript number holds exactly (2^53): refusing to round it`);
  return n;
}

export const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => exactInteger(v);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};
