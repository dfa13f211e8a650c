import pg from 'pg';

// Background work (expiry, contingency search, refund retries, overdue vends, retention) runs on
// every relay instance, and each pass must run on one instance at a time or a refund could be asked
// of Mercado Pago twice. A pass first takes its job's lock; an instance that cannot take it skips
// that pass (the holder is doing the work), so passes never queue up behind each other.
//
// With PostgreSQL the lock is a session advisory lock held on its own connection for the length of
// the pass: if the holding instance dies, PostgreSQL ends its session and frees the lock, so
// another instance takes the next pass. With SQLite there is one instance, and the lock only keeps
// two passes of the same job in this process apart.

export interface JobLocks {
  /** Runs `fn` if no other pass of `job` runs anywhere; resolves to `{ ran: false }` otherwise. */
  run<T>(job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }>;
  close(): Promise<void>;
}

export class LocalJobLocks implements JobLocks {
  private readonly running = new Set<string>();

  async run<T>(job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    if (this.running.has(job)) return { ran: false };
    this.running.add(job);
    try {
      return { ran: true, value: await fn() };
    } finally {
      this.running.delete(job);
    }
  }

  async close(): Promise<void> {}
}

/** The advisory lock class for qrkiosk's jobs ("QRK"), so they never meet another app's locks. */
const LOCK_CLASS = 0x51524b;

export class PgJobLocks implements JobLocks {
  private readonly local = new LocalJobLocks();

  /** `pool` should be the store's pool: a lock costs one connection for the length of the pass. */
  constructor(private readonly pool: pg.Pool) {}

  run<T>(job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    // the local guard first: two passes in this process would otherwise both hold the session lock
    // (advisory locks are re-entrant per session, and the pool may hand out the same one)
    return this.local.run(job, async () => {
      const c = await this.pool.connect();
      let healthy = true; // a connection whose lock state we do not know must not go back to the pool
      // a held lock's connection can die mid-pass (server restart, admin kill): the pass goes on,
      // its lock is gone with the session, and the connection is discarded afterwards
      const onError = (): void => {
        healthy = false;
      };
      c.on('error', onError);
      try {
        let ok: boolean;
        try {
          const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_CLASS, job]);
          ok = got.rows[0]?.ok === true;
        } catch (err) {
          healthy = false;
          throw err;
        }
        if (!ok) return { ran: false as const };
        try {
          return { ran: true as const, value: await fn() };
        } finally {
          await c.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, job]).catch(() => {
            healthy = false;
          });
        }
      } finally {
        c.off('error', onError);
        c.release(!healthy);
      }
    }).then((r) => (r.ran ? r.value : r));
  }

  async close(): Promise<void> {}
}
