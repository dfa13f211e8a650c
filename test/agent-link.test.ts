import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../src/agent/journal.js';
import { RelayLink, backoffCeiling, backoffDelay } from '../src/agent/relay-link.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, TOKEN, captureLogger, nextEvent, tempDir } from './agent-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('full-jitter backoff', () => {
  it('stays within [0, min(cap, base * 2^n)) for every attempt', () => {
    const base = 500;
    const cap = 60_000;
    for (let n = 0; n < 40; n++) {
      const ceiling = Math.min(cap, base * 2 ** n);
      expect(backoffCeiling(n, base, cap)).toBe(ceiling);
      expect(backoffDelay(n, base, cap, () => 0)).toBe(0);
      expect(backoffDelay(n, base, cap, () => 0.999999)).toBeLessThan(ceiling);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(n, base, cap);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('uses the whole range (jitter), not just the ceiling', () => {
    const samples = Array.from({ length: 500 }, () => backoffDelay(10, 500, 60_000));
    expect(Math.min(...samples)).toBeLessThan(15_000);
    expect(Math.max(...samples)).toBeGreaterThan(45_000);
  });
});

function makeLink(relayUrl: string, over: Partial<ConstructorParameters<typeof RelayLink>[0]> = {}) {
  const { dir, cleanup } = tempDir('qrk-link-');
  const journal = new Journal(join(dir, 'j.sqlite'));
  cleanups.push(cleanup);
  cleanups.push(() => journal.close());
  const link = new RelayLink({
    url: relayUrl,
    token: TOKEN,
    kioskId: 'kiosk-test',
    agentVersion: '0.0.0-test',
    backoff: { baseMs: 10, capMs: 80 },
    pingIntervalSeconds: 15,
    journal,
    logger: silentLogger(),
    openOrders: () => [],
    apply: () => undefined,
    ...over,
  });
  cleanups.push(() => link.close());
  return { link, journal };
}

describe('relay link', () => {
  it('a 401 at upgrade is logged with the fix and retried with capped backoff', async () => {
    const relay = await FakeRelay.start({ token: 'a-different-token-entirely' });
    cleanups.push(() => relay.close());
    const cap = captureLogger();
    const { link } = makeLink(relay.url, { logger: cap.logger });
    const delays: Array<{ attempt: number; delayMs: number; ceilingMs: number }> = [];
    link.on('reconnect', (r: { attempt: number; delayMs: number; ceilingMs: number }) => delays.push(r));
    link.start();
    await nextEvent(link as never, 'reconnect', (r: { attempt: number }) => r.attempt === 6);
    const refused = await cap.waitFor((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('relay refused the kiosk token'));
    expect(refused.msg).toBe('relay refused the kiosk token: run `qrkiosk relay kiosk add` and put the token in relay.token');
    expect(refused.status).toBe(401);
    expect(relay.refused).toBeGreaterThanOrEqual(6);
    expect(link.online).toBe(false);
    for (const d of delays) {
      expect(d.ceilingMs).toBe(Math.min(80, 10 * 2 ** d.attempt));
      expect(d.delayMs).toBeGreaterThanOrEqual(0);
      expect(d.delayMs).toBeLessThanOrEqual(d.ceilingMs);
    }
    expect(delays.map((d) => d.attempt)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('sends hello with the Bearer token, goes online on welcome, acks reliable frames once', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const applied: string[] = [];
    const { link, journal } = makeLink(relay.url, {
      apply: (m) => {
        applied.push(m.id);
      },
      openOrders: () => [{ orderId: 'ord_abcdef1', state: 'awaiting_payment' }],
    });
    link.start();
    await nextEvent(link as never, 'online');
    const hello = await relay.waitHello(1);
    expect(hello.msg).toMatchObject({ kioskId: 'kiosk-test', agentVersion: '0.0.0-test', openOrders: [{ orderId: 'ord_abcdef1' }] });
    expect(journal.loadWelcome()?.welcome.posQr).toBeTruthy();
    const f = relay.send({ type: 'order.expired', orderId: 'ord_abcdef1' }, 'm_exp_1');
    await relay.waitType('ack', (m) => m.ackId === f.id);
    relay.send({ type: 'order.expired', orderId: 'ord_abcdef1' }, 'm_exp_1');
    await relay.waitFrame((r) => r.msg.type === 'ack' && r.msg.ackId === f.id && r !== relay.of('ack')[0], 'second ack');
    expect(applied).toEqual(['m_exp_1']);
    expect(journal.inboxHas('m_exp_1')).toBe(true);
  });

  it('an apply that throws gets an internal error frame and no ack (the relay re-sends)', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const { link, journal } = makeLink(relay.url, {
      apply: () => {
        throw new Error('boom');
      },
    });
    link.start();
    await nextEvent(link as never, 'online');
    relay.send({ type: 'order.expired', orderId: 'ord_abcdef1' }, 'm_exp_2');
    const err = await relay.waitType('error', (m) => m.code === 'internal');
    expect(err.msg.refId).toBe('m_exp_2');
    expect(relay.of('ack')).toHaveLength(0);
    expect(journal.inboxHas('m_exp_2')).toBe(false);
  });

  it('resets the backoff after the link stayed up (stableAfterMs)', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const { link } = makeLink(relay.url, { stableAfterMs: 300, backoff: { baseMs: 10, capMs: 10_000 } });
    // Whether a drop came before or after stableAfterMs depends on how busy the machine is, so
    // the test records both kinds of event and checks the rule on whatever order they came in:
    // every reconnect's attempt counts the drops since the link last proved stable.
    const log: (number | 'stable')[] = [];
    link.on('reconnect', (r: { attempt: number }) => log.push(r.attempt));
    link.on('stable', () => log.push('stable'));
    link.start();
    await nextEvent(link as never, 'online');
    relay.cut();
    await relay.waitHello(2);
    relay.cut();
    await relay.waitHello(3);
    // stay up past stableAfterMs (awaited, not slept): the next drop starts from attempt 0 again
    await nextEvent(link as never, 'stable');
    relay.cut();
    await relay.waitHello(4);
    let expected = 0;
    for (const e of log) {
      if (e === 'stable') expected = 0;
      else expect(e).toBe(expected++);
    }
    expect(log.slice(-2)).toEqual(['stable', 0]);
    expect(log.filter((e) => e !== 'stable')).toHaveLength(3);
  });
});
