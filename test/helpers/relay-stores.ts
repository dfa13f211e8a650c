// Opens a relay store of either kind for the tests that run the same bodies against both
// (test/store-contract.test.ts): a SQLite file in a temp folder, or a fresh PostgreSQL database
// (test/helpers/pg.ts). Each returns the RelayStore of src/relay/store/api.ts and a cleanup.
//
// SQLite: until the async SQLite store of the store split is merged, this wraps today's
// synchronous RelayStore (src/relay/store.ts) in the async interface: each call's result as a
// resolved promise, transaction() as BEGIN IMMEDIATE ... COMMIT/ROLLBACK on its connection.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayStore as SyncRelayStore, StoreError } from '../../src/relay/store.js';
import type { RelayStore } from '../../src/relay/store/api.js';
import { openPostgresStore, type PostgresStoreOptions } from '../../src/relay/store/postgres/index.js';
import { createTestDatabase, type TestDatabase } from './pg.js';

export type StoreKind = 'sqlite' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'postgres'];

export interface TestStore {
  store: RelayStore;
  /** the SQLite file or the PostgreSQL url */
  where: string;
  /** opens a second store on the same database (a second relay instance) */
  reopen(opts?: PostgresStoreOptions): Promise<RelayStore>;
  cleanup(): Promise<void>;
}

export async function openTestStore(kind: StoreKind, opts: PostgresStoreOptions = {}): Promise<TestStore> {
  if (kind === 'postgres') {
    const db: TestDatabase = await createTestDatabase();
    const opened: RelayStore[] = [];
    const open = async (o: PostgresStoreOptions = opts) => {
      const s = await openPostgresStore(db.url, { poolSize: 4, ...o });
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      where: db.url,
      reopen: open,
      async cleanup() {
        for (const s of opened) await s.close().catch(() => undefined);
        await db.drop();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'qk-store-'));
  const path = join(dir, 'relay.sqlite');
  const opened: RelayStore[] = [];
  const open = async () => {
    const s = await openSqliteTestStore(path);
    opened.push(s);
    return s;
  };
  const store = await open();
  return {
    store,
    where: path,
    reopen: () => open(),
    async cleanup() {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The SQLite relay store on `path` (created and migrated when new). */
export async function openSqliteTestStore(path: string): Promise<RelayStore> {
  return asyncSqlite(new SyncRelayStore(path));
}

/** Today's synchronous SQLite store behind the async interface. */
function asyncSqlite(sync: SyncRelayStore): RelayStore {
  let depth = 0;
  const extra: Record<string, unknown> = {
    kind: 'sqlite',
    async ping() {
      sync.db.prepare('SELECT 1').get();
    },
    async close() {
      sync.close();
    },
    get isOpen() {
      return sync.isOpen;
    },
    writeCount: () => sync.writeCount(),
    async pruneInbox(appliedBefore: number) {
      return sync.db.prepare('DELETE FROM inbox WHERE applied_at < ?').run(appliedBefore).changes;
    },
    async transaction<T>(fn: (tx: RelayStore) => Promise<T>): Promise<T> {
      const name = `sp${depth}`;
      const outer = depth === 0;
      sync.db.exec(outer ? 'BEGIN IMMEDIATE' : `SAVEPOINT ${name}`);
      depth++;
      try {
        const r = await fn(proxy);
        sync.db.exec(outer ? 'COMMIT' : `RELEASE ${name}`);
        return r;
      } catch (err) {
        sync.db.exec(outer ? 'ROLLBACK' : `ROLLBACK TO ${name}; RELEASE ${name}`);
        throw err;
      } finally {
        depth--;
      }
    },
  };
  const proxy: RelayStore = new Proxy(sync as unknown as RelayStore, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in extra) return extra[prop];
      const v = Reflect.get(target, prop) as unknown;
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        if (!sync.isOpen) throw new StoreError('the store is closed');
        return (v as (...a: unknown[]) => unknown).apply(sync, args);
      };
    },
  });
  return proxy;
}
