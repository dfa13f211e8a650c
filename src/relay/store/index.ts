// The relay's store: what it does (api.ts), what it holds (types.ts), and how to open one
// (open.ts). Callers import from here; nothing outside this folder sees a database handle.
export type * from './api.js';
export * from './types.js';
export { openRelayStore, type OpenStoreOptions, type StoreConfig } from './open.js';
