import { runCycle, verdict, type PayPlan } from '../cycle.js';
import type { NetFault } from '../fault-proxy.js';
import { Prng } from '../prng.js';
import { latencyFigures, stoppedBy, type SuiteReport } from '../report.js';
import { World, type PaymentModel } from '../world.js';

// Network suite: our fault proxy sits on every link (agent<->relay WebSocket, relay->Mercado Pago
// API, Mercado Pago->relay POS polls and notifications) and drops, delays, half-opens and resets
// connections as the seed says. Each cycle is one sale under those faults; then the network heals
// and the sale must settle by itself, with the invariants checked after every cycle.

export interface NetworkOptions {
  cycles: number;
  seed: number;
  model?: PaymentModel;
  /** chance per chunk of a fault on each link */
  faultRate?: number;
  /** longest delay of a held chunk; the issue's figure is 30 s */
  maxDelayMs?: number;
  /** how long a cycle keeps the faults on while settling, before the network heals */
  harmMs?: number;
  log?: (line: string) => void;
  keepDir?: boolean;
  /** stop starting cycles after this many minutes and report what was reached (--minutes) */
  minutes?: number;
}

export async function networkSuite(o: NetworkOptions): Promise<SuiteReport> {
  const started = Date.now();
  const root = new Prng(o.seed);
  const log = o.log ?? (() => undefined);
  const w = await World.start({
    prng: root.fork('world'),
    model: o.model ?? 'unattended',
    deadlineSeconds: 60,
    contingencyAfterSeconds: 2,
    net: { faultRate: o.faultRate ?? 0.1, maxDelayMs: o.maxDelayMs ?? 30_000 },
  });
  const violations: string[] = [];
  const latencies: number[] = [];
  const keepUp = async () => {
    for (const part of ['relay', 'agent'] as const) {
      const p = part === 'relay' ? w.relayProc : w.agentProc;
      if (!p || (part === 'relay' ? w.relayAlive() : w.agentAlive())) continue;
      const exit = await p.exited;
      violations.push(`${part} exited under network faults (code ${exit.code}, signal ${exit.signal}): see ${w.dir}/${part}.log`);
      if (part === 'relay') await w.startRelay();
      else await w.startAgent();
    }
  };
  try {
    await w.startRelay();
    await w.startAgent();
    const stopAt = o.minutes ? started + o.minutes * 60_000 : Infinity;
    let done = 0;
    for (let cycle = 1; cycle <= o.cycles && Date.now() < stopAt; cycle++) {
      done = cycle;
      const prng = root.fork(`cycle${cycle}`);
      const plan: PayPlan = {
        kind: prng.weighted<PayPlan['kind']>([['approved', 8], ['walk_away', 1], ['late', 1]]),
        notify: { form: prng.pick(['ipn', 'webhook', 'both'] as const) },
      };
      const before = w.netFaults();
      w.harmNetwork();
      const result = await runCycle(w, prng, plan, { keepUp, trace: (l) => log(`  ${l}`), heal: () => w.healNetwork(), harmMs: o.harmMs ?? 2000 });
      log(`cycle ${cycle}: ${plan.kind}, ${w.netFaults() - before} network faults${result.stuck ? `, STUCK ${result.stuck}` : ''}`);
      if (result.payToDispenseMs !== undefined) latencies.push(result.payToDispenseMs);
      if (result.stuck) violations.push(`cycle ${cycle} (${plan.kind}): ${result.stuck}`);
      const v = await verdict(w);
      for (const x of v.violations) if (!violations.some((s) => s.endsWith(x))) violations.push(`cycle ${cycle} (${plan.kind}): ${x}`);
    }
    const faults: Record<string, number> = {};
    for (const [name, p] of Object.entries(w.proxies)) for (const [k, n] of Object.entries(p!.injected)) faults[`${name} ${k as NetFault}`] = n;
    const final = await verdict(w);
    return {
      suite: 'network',
      seed: o.seed,
      model: o.model ?? 'unattended',
      cycles: done,
      faults,
      violations,
      payToDispenseMs: latencyFigures(latencies),
      durationMs: Date.now() - started,
      extra: { ...stoppedBy(done, o), counts: final.counts, faultRate: o.faultRate ?? 0.1, maxDelayMs: o.maxDelayMs ?? 30_000, ...(o.keepDir || violations.length ? { dir: w.dir } : {}) },
    };
  } finally {
    await w.close(o.keepDir || violations.length > 0);
  }
}
