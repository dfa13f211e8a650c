// TEST HOOK for crash-consistency tests, harmless when unset.
//
// QRKIOSK_CRASH_AFTER=<point> makes the agent SIGKILL itself right after <point>:
//   - a vend state name (awaiting_payment, paid, dispensing, dispensed, vend_failed, ...): right
//     after the journal transaction that entered that state has committed;
//   - `pulse`: right after the (simulated) motor pulse has been recorded in the pulse log, i.e.
//     while the order is still `dispensing`.
// SIGKILL (not exit()) so no finally-block, no WAL checkpoint, no socket close runs: exactly what
// a power cut or an OOM kill looks like to the journal.

export function crashPoint(point: string): void {
  const wanted = process.env.QRKIOSK_CRASH_AFTER;
  if (wanted && wanted === point) {
    process.kill(process.pid, 'SIGKILL');
  }
}
