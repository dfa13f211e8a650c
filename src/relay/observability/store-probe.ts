import type { RelayStore } from '../store.js';

// What /metrics and /healthz ask the store, in one place. Written against the async store
// interface (every call awaited; `ping()` and `outboxDepth()` used when the store has them); the
// fallbacks serve today's synchronous SQLite store and go when it implements both.

interface AsyncProbeMethods {
  ping?: () => Promise<void> | void;
  outboxDepth?: () => Promise<number> | number;
}

/** Proves the database answers a query. Rejects (or throws) when it cannot. */
export async function pingStore(store: RelayStore): Promise<void> {
  const s = store as unknown as AsyncProbeMethods;
  if (typeof s.ping === 'function') {
    await s.ping();
    return;
  }
  store.db.prepare('SELECT 1').get();
}

/** Reliable frames written for kiosks and not yet acked by them. */
export async function outboxDepth(store: RelayStore): Promise<number> {
  const s = store as unknown as AsyncProbeMethods;
  if (typeof s.outboxDepth === 'function') return await s.outboxDepth();
  return (store.db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n;
}
