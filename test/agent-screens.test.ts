import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { NullDisplay, type Screen } from '../src/devices/display.js';
import { texts } from '../src/devices/texts.js';
import { buildMercadoPagoQr } from '../src/emv/index.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, agentConfig, nextEvent, tempDir } from './agent-helpers.js';
import { waitFor } from './helpers/wait.js';

// Which screen the session chooses, and in which language.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: { catalog?: Array<{ sku: string; name: string; price: number; currency: string }>; config?: Record<string, unknown> }) {
  const currency = (opts.catalog?.[0]?.currency ?? 'ARS') as 'ARS';
  const posQr = buildMercadoPagoQr({ collectorId: 123, currency, merchantName: 'Test Shop', merchantCity: 'City', terminalLabel: 'POS1' });
  const relay = await FakeRelay.start(opts.catalog ? { catalog: opts.catalog, posQr } : {});
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-scr-');
  cleanups.push(cleanup);
  const display = new NullDisplay();
  const agent: Agent = await startAgent(agentConfig(dir, relay.url, opts.config), {
    logger: silentLogger(),
    display,
    control: false,
    timings: { resultScreenMs: 50, offlineGraceMs: 50, tickMs: 1000 },
  });
  cleanups.push(() => agent.close());
  await waitFor('welcome from the relay', () => agent.status().relay.online && display.last()?.products?.some((p) => p.amountText));
  return { relay, agent, display };
}

describe('session screens', () => {
  it('speaks the language of the catalog site when no locale is configured', async () => {
    const { agent, display } = await setup({
      catalog: [{ sku: 'COLA', name: 'Refri', price: 700, currency: 'BRL' }],
      config: { locale: undefined, slots: [{ slot: 1, sku: 'COLA', stock: 5 }] },
    });
    agent.select(1);
    expect(display.last()).toMatchObject({ screen: 'pay', locale: 'pt-BR', amountText: 'R$ 7,00' });
    const refused = agent.select(9);
    expect(refused.ok === false && refused.message).toMatch(new RegExp(`^${texts('pt-BR').refused.unknown_slot}`));
  });

  it('a configured locale wins over the site', async () => {
    const { agent, display } = await setup({
      catalog: [{ sku: 'COLA', name: 'Refri', price: 700, currency: 'BRL' }],
      config: { locale: 'en', slots: [{ slot: 1, sku: 'COLA', stock: 5 }] },
    });
    agent.select(1);
    expect(display.last()?.locale).toBe('en');
  });

  it('shows how many are left when few, and out_of_stock when nothing can be sold', async () => {
    const { agent, display } = await setup({ config: { slots: [{ slot: 1, sku: 'COLA', stock: 2 }, { slot: 2, sku: 'CHIPS', stock: 9 }] } });
    const idle = display.last()!;
    expect(idle.screen).toBe('idle');
    expect(idle.products?.map((p) => p.stock)).toEqual([2, undefined]);
    void agent;

    const empty = await setup({ config: { slots: [{ slot: 1, sku: 'COLA', stock: 0 }, { slot: 2, sku: 'CHIPS', stock: 0 }] } });
    expect(empty.display.last()?.screen).toBe('out_of_stock');
  });

  it('says why it is out of service when the relay is gone', async () => {
    const { relay, agent, display } = await setup({});
    const down = nextEvent<Screen>(agent as never, 'screen', (s) => s.screen === 'out_of_service');
    await relay.close();
    await down;
    expect(display.last()).toMatchObject({ screen: 'out_of_service', reason: 'offline' });
  });
});
