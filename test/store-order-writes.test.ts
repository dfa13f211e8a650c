// Where the relay's code may write an order's state (issue "Fleet scale": every order state change
// goes through the checked transition). The store contract test proves what transitionOrder and
// insertOrder refuse at run time (test/store-contract.test.ts); this one proves there is no other
// way round them in the source: in both stores, the only statement that sets orders.state is in
// transitionOrder, the only insert into orders is in insertOrder, and insertOrder checks its first
// step through core/relay-order.ts. The SQL of both stores lives in per-table modules, where a new
// method could otherwise add an `UPDATE orders SET state` of its own unnoticed.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const RELAY = join(import.meta.dirname, '..', 'src', 'relay');

/** Copying a whole database (`qrkiosk relay migrate`) moves rows with their history, not states. */
const NOT_LIFECYCLE = new Set(['store/postgres/copy-from-sqlite.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

interface Hit {
  file: string;
  /** the method the statement is written in: the nearest method definition above it */
  method: string | undefined;
}

/** Every place in the relay's code a pattern matches, with the method it is in. */
function hits(pattern: RegExp): Hit[] {
  const out: Hit[] = [];
  for (const path of sources(RELAY)) {
    const file = relative(RELAY, path).replaceAll('\\', '/');
    if (NOT_LIFECYCLE.has(file)) continue;
    const text = readFileSync(path, 'utf8');
    for (const m of text.matchAll(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`))) {
      const before = text.slice(0, m.index);
      const defs = [...before.matchAll(/^ {2}(?:async )?(?:private )?(?:async )?(\w+)(?:<[^>]*>)?\(/gm)];
      out.push({ file, method: defs.at(-1)?.[1] });
    }
  }
  return out.sort((a, b) => a.file.localeCompare(b.file));
}

describe('order writes go through the order lifecycle table', () => {
  it('orders.state is set only by transitionOrder, in each store', () => {
    const sets = hits(/UPDATE\s+orders\s+SET[^`'";]*?(?<![\w.])state\s*=/i);
    expect(sets).toEqual([
      { file: 'store/postgres/orders.ts', method: 'transitionOrder' },
      { file: 'store/sqlite/orders.ts', method: 'transitionOrder' },
    ]);
  });

  it('orders are inserted only by insertOrder, which checks the first step against core/relay-order.ts', () => {
    const inserts = hits(/INSERT\s+(?:OR\s+\w+\s+)?INTO\s+orders\b/i);
    expect(inserts).toEqual([
      { file: 'store/postgres/orders.ts', method: 'insertOrder' },
      { file: 'store/sqlite/orders.ts', method: 'insertOrder' },
    ]);
    for (const store of ['postgres', 'sqlite']) {
      const text = readFileSync(join(RELAY, 'store', store, 'orders.ts'), 'utf8');
      const insertOrder = text.slice(text.search(/^ {2}insertOrder\(/m), text.search(/^ {2}getOrder\(/m));
      expect(insertOrder, store).toMatch(/relayOrder\.next\('new', event\) !== o\.state/);
    }
  });

  it('the scan finds a state write where there is one (the pattern is not blind)', () => {
    // the agent's journal is another database with its own checked machine (agent/journal.ts):
    // its UPDATE must be seen by the same pattern, or the two tests above prove nothing
    const journal = readFileSync(join(RELAY, '..', 'agent', 'journal.ts'), 'utf8');
    expect(journal).toMatch(/UPDATE\s+orders\s+SET[^`'";]*?(?<![\w.])state\s*=/i);
  });
});
