import type { RelayStore } from '../store/index.js';

// What /metrics and /healthz ask the store, in one place.

/** Proves the database answers a query. Rejects when it cannot. */
export async function pingStore(store: RelayStore): Promise<void> {
  await store.ping();
}

/** Reliable frames written for kiosks and not yet acked by them. */
export async function outboxDepth(store: RelayStore): Promise<number> {
  return store.outboxDepth();
}
