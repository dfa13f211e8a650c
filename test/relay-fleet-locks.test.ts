import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { LocalJobLocks, PgJobLocks } from '../src/relay/fleet/job-lock.js';
import { waitFor } from './helpers/wait.js';

// Job locks on the machine's real PostgreSQL: two "instances" (two pools) never run the same job's
// pass at once, and a dead holder's lock is freed by the server.

const PG_URL = process.env.QRKIOSK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pools: pg.Pool[] = [];
afterEach(async () => {
  while (pools.length) await pools.pop()!.end();
});
function pool(name: string): pg.Pool {
  const p = new pg.Pool({ connectionString: PG_URL, max: 3, application_name: name });
  p.on('error', () => {}); // idle connections killed by the test's admin session
  pools.push(p);
  return p;
}

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe('LocalJobLocks', () => {
  it('skips a second pass of the same job while the first runs, not another job', async () => {
    const l = new LocalJobLocks();
    const g = gate();
    const first = l.run('refunds', () => g.wait.then(() => 1));
    expect(await l.run('refunds', async () => 2)).toEqual({ ran: false });
    expect(await l.run('expiry', async () => 3)).toEqual({ ran: true, value: 3 });
    g.open();
    expect(await first).toEqual({ ran: true, value: 1 });
    expect(await l.run('refunds', async () => 4)).toEqual({ ran: true, value: 4 });
  });
});

describe('PgJobLocks on PostgreSQL', () => {
  const job = `test-job-${process.pid}-${Date.now()}`;

  it('two instances: one pass at a time, then the other may run', async () => {
    const a = new PgJobLocks(pool('locks-a'));
    const b = new PgJobLocks(pool('locks-b'));
    const g = gate();
    let started = false;
    const first = a.run(job, async () => {
      started = true;
      await g.wait;
      return 'a';
    });
    await waitFor('a holding the lock', () => started);
    expect(await b.run(job, async () => 'b')).toEqual({ ran: false });
    g.open();
    expect(await first).toEqual({ ran: true, value: 'a' });
    expect(await b.run(job, async () => 'b')).toEqual({ ran: true, value: 'b' });
  });

  it('a pass that throws frees the lock', async () => {
    const a = new PgJobLocks(pool('locks-a2'));
    const b = new PgJobLocks(pool('locks-b2'));
    await expect(a.run(job, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await b.run(job, async () => 'b')).toEqual({ ran: true, value: 'b' });
  });

  it('the lock of an instance whose session dies is freed by the server', async () => {
    const name = `locks-dying-${process.pid}-${Date.now()}`;
    const a = new PgJobLocks(pool(name));
    const b = new PgJobLocks(pool('locks-b3'));
    const g = gate();
    let started = false;
    const first = a.run(job, async () => {
      started = true;
      await g.wait;
    });
    await waitFor('a holding the lock', () => started);
    expect(await b.run(job, async () => 'b')).toEqual({ ran: false });
    const admin = pool('locks-admin');
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [name]);
    await waitFor('b taking the freed lock', async () => (await b.run(job, async () => 'b')).ran);
    g.open();
    await first.catch(() => {}); // its unlock fails on the dead connection, which is then discarded
  });
});
