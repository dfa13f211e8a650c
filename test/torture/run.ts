import { Prng } from './prng.js';
import { formatReport, type SuiteReport } from './report.js';
import { crashSuite } from './suites/crash.js';
import { FUZZ_TARGETS, fuzzSuite, type FuzzTarget } from './suites/fuzz.js';
import { mpFaultSuite } from './suites/mp-faults.js';
import { networkSuite } from './suites/network.js';
import { soakSuite } from './suites/soak.js';
import { PAYMENT_MODELS, type PaymentModel } from './world.js';

// npm run torture -- [suite ...] [--cycles N] [--seed S] [--model M|all] [--verbose] [--keep]
// Runs the torture suites at full size (the short versions run in `npm test`). Every run prints
// its seed first; the same seed replays the same faults in the same order.

const SUITES = ['crash', 'network', 'mp', 'fuzz', 'soak'] as const;
type Suite = (typeof SUITES)[number];

function usage(msg?: string): never {
  if (msg) console.error(`torture: ${msg}`);
  console.error(`usage: npm run torture -- [${SUITES.join('|')} ...] [--cycles N] [--seed S] [--model ${PAYMENT_MODELS.join('|')}[,...]|all] [--verbose] [--keep]
  default: every suite; --cycles is per suite (fuzz: cases per target; soak: vends)
  --minutes M: each suite run (each model's) stops after M minutes and reports what it reached (not fuzz)
  --model all runs the crash, network and mp suites once per payment model, each --cycles long`);
  process.exit(2);
}

const args = process.argv.slice(2);
const suites: Suite[] = [];
let cycles: number | undefined;
let seed: number | undefined;
let models: PaymentModel[] = ['unattended'];
let verbose = false;
let keep = false;
let kiosks: number | undefined;
let minutes: number | undefined;
let targets: FuzzTarget[] | undefined;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const value = () => {
    const v = args[++i];
    if (v === undefined) usage(`${a} needs a value`);
    return v;
  };
  if (a === '--cycles') {
    cycles = Number(value());
    if (!Number.isInteger(cycles) || cycles < 1) usage('--cycles must be a positive whole number');
  } else if (a === '--seed') {
    seed = Number(value());
    if (!Number.isSafeInteger(seed) || seed < 0) usage('--seed must be a non-negative whole number');
  } else if (a === '--model') {
    // one model, several separated by commas, or all
    const m = value();
    models = m === 'all' ? [...PAYMENT_MODELS] : m.split(',');
    const bad = models.find((x) => !PAYMENT_MODELS.includes(x));
    if (bad !== undefined) usage(`unknown model "${bad}"; known: ${PAYMENT_MODELS.join(', ')}, or all`);
  } else if (a === '--verbose') verbose = true;
  else if (a === '--keep') keep = true;
  else if (a === '--kiosks') kiosks = Number(value());
  else if (a === '--minutes') {
    minutes = Number(value());
    if (!(minutes > 0)) usage('--minutes must be a positive number (a suite stops after it and reports what it reached)');
  }
  else if (a === '--targets') {
    targets = value().split(',') as FuzzTarget[];
    const bad = targets.find((t) => !FUZZ_TARGETS.includes(t));
    if (bad) usage(`unknown fuzz target "${bad}"; known: ${FUZZ_TARGETS.join(', ')}`);
  }
  else if ((SUITES as readonly string[]).includes(a)) suites.push(a as Suite);
  else usage(`unknown argument "${a}"`);
}
const runSeed = seed ?? Prng.freshSeed();
console.log(`torture seed ${runSeed} (replay with --seed ${runSeed})`);
const log = verbose ? (l: string) => console.log(`  ${l}`) : undefined;

const DEFAULTS: Record<Suite, number> = { crash: 1000, network: 1000, mp: 1000, fuzz: 100_000, soak: 100_000 };
let failed = false;
const runs = (suites.length ? suites : SUITES).flatMap((suite): Array<{ suite: Suite; model: PaymentModel }> =>
  // the fuzz targets do not depend on the model; the soak sells through the unattended model
  suite === 'fuzz' || suite === 'soak' ? [{ suite, model: 'unattended' }] : models.map((model) => ({ suite, model })),
);
if (models.some((m) => m !== 'unattended') && runs.some((r) => r.suite === 'soak')) console.log('soak: sells through the unattended model only');
for (const { suite, model } of runs) {
  const n = cycles ?? DEFAULTS[suite];
  let report: SuiteReport;
  switch (suite) {
    case 'crash':
      report = await crashSuite({ cycles: n, seed: runSeed, model, log, keepDir: keep, ...(minutes ? { minutes } : {}) });
      break;
    case 'network':
      report = await networkSuite({ cycles: n, seed: runSeed, model, log, keepDir: keep, ...(minutes ? { minutes } : {}) });
      break;
    case 'mp':
      report = await mpFaultSuite({ cycles: n, seed: runSeed, model, log, keepDir: keep, ...(minutes ? { minutes } : {}) });
      break;
    case 'fuzz':
      report = await fuzzSuite({ cases: n, seed: runSeed, log, ...(targets ? { targets } : {}) });
      break;
    case 'soak':
      report = await soakSuite({ vends: n, seed: runSeed, model, log, keepDir: keep, ...(kiosks ? { kiosks } : {}), ...(minutes ? { minutes } : {}) });
      break;
    default:
      usage(`suite ${suite} is not written yet`);
  }
  console.log(formatReport(report));
  if (report.violations.length) failed = true;
}
process.exit(failed ? 1 : 0);
