import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { crashPoint } from '../../../runtime/crash-hook.js';
import type { Row } from '../rows.js';
import { StoreError } from '../types.js';

// The pool, or one transaction's connection, as the per-table modules of this folder use it:
// queries with rows mapped to records, and the transaction every read-then-write runs in. A PgConn
// bound to the pool runs each query on whichever connection is free; `transaction(fn)` hands fn a
// PgConn bound to one checked-out connection between BEGIN and COMMIT, so what fn writes (a state
// change and its outbox row) commits together or not at all, and the row locks it takes
// (`SELECT … FOR UPDATE`) last until then. ./store.ts builds the modules over one PgConn and
// builds them again over a transaction's.

export const UNIQUE_VIOLATION = '23505';

/** The error PostgreSQL raises when an insert hits a unique index (another instance was first). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === UNIQUE_VIOLATION;
}

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

interface TxState {
  pool: pg.Pool;
  client: pg.PoolClient;
  /** false once the transaction ended: a tx store kept past its callback must not run queries */
  open: boolean;
  savepoints: number;
}

/** Which transaction (if any) the current async context is inside (follows fn's awaits). */
const insideTransaction = new AsyncLocalStorage<TxState>();

/** What the store and all its transactions' handles share. */
interface Shared {
  calls: number;
  closed: boolean;
}

export class PgConn {
  constructor(
    private readonly pool: pg.Pool,
    private readonly tx: TxState | null = null,
    private readonly shared: Shared = { calls: 0, closed: false },
  ) {}

  private get q(): Queryable {
    if (!this.tx) {
      // a running transaction finishes on its own connection; close() waits for it
      if (this.shared.closed) throw new StoreError('the relay store is closed');
      this.refuseInsideOwnTransaction();
      return this.pool;
    }
    if (!this.tx.open) throw new StoreError('this transaction has ended: use the store passed to transaction() only inside its callback');
    return this.tx.client;
  }

  async rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.q.query<Row>(sql, params)).rows;
  }

  /** The first row `sql` selects, as a record; undefined when there is none. */
  async one<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): Promise<T | undefined> {
    const r = (await this.rows(sql, params))[0];
    return r ? fromRow(r) : undefined;
  }

  /** Every row `sql` selects, as records. */
  async many<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): Promise<T[]> {
    return (await this.rows(sql, params)).map(fromRow);
  }

  /** `sql` selects COUNT(*) AS n. */
  async count(sql: string, ...params: unknown[]): Promise<number> {
    return (await this.rows(sql, params))[0]!.n as number;
  }

  /** Runs `sql`; resolves the number of rows it changed. */
  async run(sql: string, ...params: unknown[]): Promise<number> {
    return (await this.q.query(sql, params)).rowCount ?? 0;
  }

  /**
   * The POS-url poll reuses an answer while this number stays the same. Other instances write to
   * the same database without this process seeing it, so on PostgreSQL "no write here" never
   * means "nothing changed": every call returns a new number and the cache is never reused.
   */
  writeCount(): number {
    return ++this.shared.calls;
  }

  get inTransaction(): boolean {
    return this.tx !== null;
  }

  /**
   * Runs fn in one transaction on one pooled connection (a savepoint when nested): the state
   * change and its outbox row commit together or not at all. fn gets a PgConn bound to that
   * transaction; it rolls back when fn throws, and the error is thrown on.
   */
  async transaction<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    if (this.tx) return this.savepoint(fn);
    if (this.shared.closed) throw new StoreError('the relay store is closed');
    this.refuseInsideOwnTransaction();
    const client = await this.pool.connect();
    const state: TxState = { pool: this.pool, client, open: true, savepoints: 0 };
    let broken: Error | undefined;
    // A checked-out client whose connection dies between two queries (server restart, network)
    // emits 'error', and the pool listens only to idle clients: unheard, it would crash the
    // process. Noted instead; the transaction's next query fails and it rolls back as any other.
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      let result: T;
      try {
        result = await insideTransaction.run(state, () => fn(new PgConn(this.pool, state, this.shared)));
        crashPoint('relay.uncommitted'); // crash test hook: written, not committed
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e; // the connection is unusable: the pool must not hand it out again
        });
        throw err;
      }
      crashPoint('relay.committed'); // crash test hook: committed
      return result;
    } finally {
      state.open = false;
      client.off('error', onError);
      client.release(broken);
    }
  }

  private async savepoint<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    const tx = this.tx!;
    const name = `sp${++tx.savepoints}`;
    await this.q.query(`SAVEPOINT ${name}`);
    try {
      const r = await fn(this);
      await tx.client.query(`RELEASE SAVEPOINT ${name}`);
      return r;
    } catch (err) {
      await tx.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    }
  }

  /**
   * A call on the outer store from inside one of its transactions runs on another connection,
   * outside the transaction: it does not see its writes, and waits forever for a row the
   * transaction has locked. Refused, as the SQLite store refuses it.
   */
  private refuseInsideOwnTransaction(): void {
    const open = insideTransaction.getStore();
    if (open?.open && open.pool === this.pool) {
      throw new StoreError(
        'a store call was made on the store itself from inside its own transaction, where it would not see the transaction and could wait for it forever: make it on the `tx` handle the transaction passed in',
      );
    }
  }

  /** fn inside a transaction: this one when there is one (its row locks last to its end), else a new one. */
  atomic<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    return this.tx ? fn(this) : this.transaction(fn);
  }

  requireTransaction(what: string): void {
    if (!this.tx) {
      throw new StoreError(
        `${what} claims rows with FOR UPDATE SKIP LOCKED, which last only until the transaction ends: call it on the store given by transaction()`,
      );
    }
  }

  /** Proves the database answers (health checks). */
  async ping(): Promise<void> {
    await this.q.query('SELECT 1');
  }

  /** Ends the pool (waits for checked-out connections to be released). */
  async close(): Promise<void> {
    if (this.tx) throw new StoreError('close() the store, not a transaction');
    if (this.shared.closed) return;
    this.shared.closed = true;
    await this.pool.end(); // waits for the connections checked out by running transactions
  }
}
