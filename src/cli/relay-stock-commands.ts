import { parseArgs } from 'node:util';
import { loadRelayConfig } from '../relay/config.js';
import { pickList } from '../relay/console/stock.js';
import { openRelayStore } from '../relay/store/index.js';

// `qrkiosk relay stock par|pick-list`: par levels per slot (kept in the store) and a route's pick
// list (what to load where: par minus the count in each kiosk's latest report), the same
// computation as GET /api/v1/stock/pick-list.

const USAGE = `usage:
  qrkiosk relay stock par <kioskId> <slot> <par> --config FILE     (par 0 removes it: the slot's configured full count applies)
  qrkiosk relay stock pick-list <route> --config FILE [--json]      routes are stock.routes in relay.yaml`;

interface Io {
  out(line: string): void;
  err(line: string): void;
}

export async function stockCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { config: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new Error(`${(err as Error).message.split('\n')[0]}\n${USAGE}`);
  }
  const { values, positionals: p } = parsed;
  if (!values.config || (sub !== 'par' && sub !== 'pick-list')) throw new Error(USAGE);
  const config = loadRelayConfig(values.config);
  if (sub === 'par' && (p.length !== 3 || !/^\d+$/.test(p[1]!) || !/^\d+$/.test(p[2]!) || Number(p[1]) < 1)) throw new Error(`slot and par are whole numbers (slot from 1)\n${USAGE}`);
  if (sub === 'pick-list' && p.length !== 1) throw new Error(USAGE);
  const store = await openRelayStore(config.store);
  try {
    if (sub === 'par') {
      const [kioskId, slot, par] = [p[0]!, Number(p[1]), Number(p[2])];
      if (!(await store.getKiosk(kioskId))) throw new Error(`no kiosk "${kioskId}" at this relay (qrkiosk relay kiosk list)`);
      await store.setParLevel(kioskId, slot, par);
      io.out(par === 0 ? `kiosk ${kioskId} slot ${slot}: par level removed (its configured full count applies)` : `kiosk ${kioskId} slot ${slot}: par level ${par}`);
      return 0;
    }
    const route = p[0]!;
    const ids = Object.hasOwn(config.stock.routes, route) ? config.stock.routes[route]! : undefined;
    if (!ids) throw new Error(`no route "${route}" in stock.routes of ${values.config} (routes: ${Object.keys(config.stock.routes).join(', ') || 'none'})`);
    const statuses = new Map((await store.statuses()).map((s) => [s.kioskId, s.status]));
    const pars = new Map<string, Map<number, number>>();
    for (const x of await store.parLevels()) pars.set(x.kioskId, (pars.get(x.kioskId) ?? new Map<number, number>()).set(x.slot, x.par));
    const known = new Set((await store.listKiosks()).map((k) => k.id));
    const list = pickList(route, ids, (id) => ({ status: statuses.get(id) ?? null, pars: pars.get(id) ?? new Map(), known: known.has(id) }));
    if (values.json) {
      io.out(JSON.stringify(list, null, 2));
      return 0;
    }
    io.out(`pick list for route ${route}`);
    for (const k of list.kiosks) {
      if (!k.known) io.out(`  ${k.kioskId}: not a kiosk of this relay`);
      else if (k.statusAt === null) io.out(`  ${k.kioskId}: no stock report yet`);
      else if (k.lines.length === 0) io.out(`  ${k.kioskId}: full`);
      else for (const l of k.lines) io.out(`  ${k.kioskId} slot ${l.slot} ${l.sku}: load ${l.load} (has ${l.count}, par ${l.par})`);
    }
    io.out(`take: ${list.totals.map((t) => `${t.sku} x${t.load}`).join(', ') || 'nothing'}`);
    return 0;
  } finally {
    await store.close();
  }
}
