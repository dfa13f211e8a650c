// TEST HOOK for the crash-consistency tests and the crash torture suite, harmless when unset.
//
// QRKIOSK_CRASH_AFTER=<point>[#<n>] makes the process SIGKILL itself the n-th time (default the
// first) it reaches <point>:
//   agent:
//   - a vend state name (awaiting_payment, paid, dispensing, dispensed, vend_failed, ...): right
//     after the journal transaction that entered that state has committed;
//   - `<state>.uncommitted`: inside that transaction, after its writes and before its commit
//     (the same as dying just before the write: SQLite must roll it back);
//   - `pulse`: right after the (simulated) motor pulse has been recorded in the pulse log, i.e.
//     while the order is still `dispensing`.
//   relay:
//   - `relay.committed` / `relay.uncommitted`: after / just before the commit of a store
//     transaction; with #n the torture suite picks which write of a vend cycle it dies around.
// QRKIOSK_CRASH_FILE=<path> does the same with the point read from that file at every point
// reached, so a test can arm a running process without restarting it: the first word is the
// point, the rest a free label; the count restarts when the file's text changes; a missing or
// empty file arms nothing.
// SIGKILL (not exit()) so no finally-block, no WAL checkpoint, no socket close runs: exactly what
// a power cut or an OOM kill looks like to the database. Counted by step, never by the clock, so
// a seeded run dies at the same write every time.

import { readFileSync } from 'node:fs';

const reached = new Map<string, number>();
let armedText = '';

function armed(): string | undefined {
  const file = process.env.QRKIOSK_CRASH_FILE;
  if (!file) return process.env.QRKIOSK_CRASH_AFTER;
  let text = '';
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    // no file: nothing armed
  }
  if (text !== armedText) {
    armedText = text;
    reached.clear();
  }
  return text.split(/\s+/)[0] || undefined;
}

export function crashPoint(point: string): void {
  const wanted = armed();
  if (!wanted) return;
  const hash = wanted.lastIndexOf('#');
  const name = hash < 0 ? wanted : wanted.slice(0, hash);
  if (name !== point) return;
  const nth = hash < 0 ? 1 : Number(wanted.slice(hash + 1));
  const n = (reached.get(point) ?? 0) + 1;
  reached.set(point, n);
  if (n === nth) process.kill(process.pid, 'SIGKILL');
}
