import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadRelayConfig } from '../relay/config.js';
import { auditsCsv, compareAudit, formatComparison } from '../relay/dex-audits.js';
import { openRelayStore, type RelayStore } from '../relay/store/index.js';

// `qrkiosk relay dex ...`: the machines' own audits the agents sent (dex.audit), beside
// qrkiosk's sales for the same machine and period, and as CSV for the operator's spreadsheet.

export const DEX_USAGE = `  qrkiosk relay dex list --config FILE [--kiosk ID] [--from DATE] [--to DATE] [--limit N] [--json]
  qrkiosk relay dex show <auditId> --config FILE [--json]     the audit beside qrkiosk's own sales
  qrkiosk relay dex export --config FILE [--kiosk ID] [--from DATE] [--to DATE] [--out FILE.csv]`;

interface Io {
  out(line: string): void;
  err(line: string): void;
}

function time(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`${flag} "${v}" is not a date: write e.g. ${flag} 2026-12-01 or ${flag} 2026-12-01T08:00Z`);
  return t;
}

async function withStore<T>(configPath: unknown, fn: (store: RelayStore) => Promise<T>): Promise<T> {
  if (typeof configPath !== 'string' || !configPath) throw new Error('--config FILE is required (the relay YAML)');
  const store = await openRelayStore(loadRelayConfig(configPath).store);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function dexCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        kiosk: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        limit: { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new Error(`${(err as Error).message.split('\n')[0]}\n${DEX_USAGE}`);
  }
  const { values, positionals } = parsed;
  const range = {
    ...(values.kiosk ? { kioskId: values.kiosk } : {}),
    ...(values.from !== undefined ? { from: time(values.from, '--from')! } : {}),
    ...(values.to !== undefined ? { to: time(values.to, '--to')! } : {}),
  };
  switch (sub) {
    case 'help':
      io.out(`usage:\n${DEX_USAGE}`);
      return 0;
    case 'list': {
      const limit = values.limit === undefined ? 50 : Number(values.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new Error('--limit must be a positive whole number, e.g. --limit 50');
      const audits = await withStore(values.config, (s) => s.dexAudits({ ...range, limit }));
      if (values.json) io.out(JSON.stringify(audits, null, 2));
      else if (audits.length === 0) io.out('no machine audits');
      else {
        for (const a of audits) {
          const b = a.body;
          io.out(
            `${new Date(a.readAt).toISOString().slice(0, 16)}  ${a.auditId}  ${a.kioskId}  machine ${a.machineSerial}  ${b.protocol}  ` +
              `${b.products.length} selections, ${b.events.length} events${b.truncated ? ' (truncated)' : ''}`,
          );
        }
      }
      return 0;
    }
    case 'show': {
      const id = positionals[0];
      if (!id || positionals.length !== 1) throw new Error(`give one audit id (qrkiosk relay dex list shows them)\n${DEX_USAGE}`);
      const cmp = await withStore(values.config, async (s) => {
        const a = await s.getDexAudit(id);
        if (!a) throw new Error(`no audit ${id} (qrkiosk relay dex list shows them)`);
        return compareAudit(s, a);
      });
      io.out(values.json ? JSON.stringify(cmp, null, 2) : formatComparison(cmp));
      return 0;
    }
    case 'export': {
      const audits = (await withStore(values.config, (s) => s.dexAudits({ ...range, limit: 100_000 }))).reverse();
      const csv = auditsCsv(audits);
      if (values.out) {
        writeFileSync(values.out, csv);
        io.out(`${audits.length} audits written to ${values.out}`);
      } else io.out(csv.trimEnd());
      return 0;
    }
    default:
      throw new Error(`${sub ? `unknown "dex ${sub}"` : 'say what to do with the audits'}\n${DEX_USAGE}`);
  }
}
