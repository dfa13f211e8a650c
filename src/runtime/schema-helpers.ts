import * as z from 'zod/mini';
import './zod.js';

// Building blocks of the YAML config schemas (agent config, hardware profiles). Every message says
// what to write instead, because the person reading it is a technician on SSH at a kiosk.

/** An error message for a leaf: what is wrong ("missing"/"invalid") plus the fix. */
export function hint(fix: string) {
  return (iss: { input?: unknown }) => (iss.input === undefined ? `missing: ${fix}` : `invalid: ${fix}`);
}

/** strict objects, so a typo ("dropWindow:") is an error instead of a silently ignored key */
export function section<T extends z.core.$ZodLooseShape>(shape: T, fix: string) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        return `unknown key(s) ${iss.keys.map((k) => `"${k}"`).join(', ')}: fix the spelling or remove it (allowed here: ${allowed})`;
      }
      return iss.input === undefined ? `missing: ${fix}` : `invalid: ${fix}`;
    },
  });
}
