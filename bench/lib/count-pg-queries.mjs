// Counts the SQL statements a process sends through node-pg, by statement text, and writes them
// to $TMPDIR/pg-queries-<pid>.txt at exit (most frequent first). For bench/fleet-sales.ts:
//   NODE_OPTIONS="--import $PWD/bench/lib/count-pg-queries.mjs" npx tsx bench/fleet-sales.ts ...
// (every child inherits it; the relays' files are the ones with the order statements). Divide
// the sum by the sales completed for queries per sale.

import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const pg = createRequire(import.meta.url)('pg');
const counts = new Map();
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (q, ...rest) {
  const text = typeof q === 'string' ? q : (q?.text ?? '?');
  const key = text.replace(/\s+/g, ' ').slice(0, 100);
  counts.set(key, (counts.get(key) ?? 0) + 1);
  return query.call(this, q, ...rest);
};
process.on('exit', () => {
  if (counts.size === 0) return;
  const rows = [...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v}\t${k}`);
  appendFileSync(join(tmpdir(), `pg-queries-${process.pid}.txt`), `${rows.join('\n')}\n`);
});
