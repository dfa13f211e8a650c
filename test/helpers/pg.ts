// The real PostgreSQL server of the tests: 127.0.0.1:5432, database `test`, trust auth (`.ci/run`
// installs and starts one when nothing answers there). Each test gets a database of its own with
// a random name, dropped afterwards, so tests running in parallel never see each other's rows.
// Without a server a developer's laptop skips these tests; in CI (CI=true) they FAIL: the issue
// says a PostgreSQL test is never skipped in CI.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { IN_CI } from './ci.js';

export const PG_HOST = process.env.QRKIOSK_TEST_PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.QRKIOSK_TEST_PGPORT ?? 5432);
export const PG_USER = process.env.QRKIOSK_TEST_PGUSER ?? process.env.PGUSER ?? 'postgres';
/** the database the harness connects to first, to create and drop the tests' own */
export const PG_ADMIN_DB = 'test';

export function pgUrl(database: string): string {
  return `postgres://${encodeURIComponent(PG_USER)}@${PG_HOST}:${PG_PORT}/${encodeURIComponent(database)}`;
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: pgUrl(PG_ADMIN_DB), connectionTimeoutMillis: 10_000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

let reachable: Promise<string | null> | undefined;

/** null when the server answers, else why not (memoised: one probe per test file). */
export function pgProblem(): Promise<string | null> {
  reachable ??= withAdmin(async (c) => {
    await c.query('SELECT 1');
    return null;
  }).catch((err: Error) => `${err.message}`);
  return reachable;
}

/**
 * true when the tests may be skipped (no server, not CI). In CI a missing server throws, which
 * fails the test file: `.ci/run` was supposed to start one.
 */
export async function skipWithoutPostgres(): Promise<boolean> {
  const problem = await pgProblem();
  if (!problem) return false;
  const what = `PostgreSQL at ${PG_HOST}:${PG_PORT} (user ${PG_USER}, database ${PG_ADMIN_DB}, trust auth) does not answer: ${problem}`;
  if (IN_CI) throw new Error(`${what}: CI must start it (.ci/run installs the Debian package postgresql); PostgreSQL tests fail in CI, they are never skipped`);
  return true;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** drops the database, ending any connection still open to it */
  drop(): Promise<void>;
}

/** A new empty database with a random name; drop() it after the test. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `qk_test_${process.pid}_${randomBytes(5).toString('hex')}`;
  await withAdmin(async (c) => {
    // CREATE DATABASE fails (55006) while another session uses template1, e.g. a concurrent
    // CREATE DATABASE by another test worker: try again; the copy itself takes milliseconds
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query(`CREATE DATABASE ${name}`);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== '55006' || attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  });
  let dropped = false;
  return {
    name,
    url: pgUrl(name),
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
