// The agent as systemd runs it: compiled JS (what `npm run build` makes: here esbuild turns each
// source file into one .js as tsc does, then scripts/bundle-dist.mjs bundles it as the build does),
// in its own process, connected to a relay.
//   start -> ready      spawn until the agent logs "agent started" (when it tells systemd READY=1),
//                       vs spawning a bare `node` that prints one line
//   idle RSS            resident memory once connected and idle, vs a bare `node` process idle
// The relay is bench/servers/relay.ts in its own process. The display is a framebuffer (a regular
// file with a fake sysfs folder, 800x480 XRGB8888), buttons none, dispenser sim.

import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundleDist } from '../scripts/bundle-dist.mjs';
import { rssMb, startChild } from './lib/proc.js';
import { median } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** node's flags in the agent's systemd unit (ExecStart=/usr/bin/node FLAGS .../qrkiosk.js agent) */
export function unitNodeFlags(): string[] {
  const unit = readFileSync(join(ROOT, 'systemd', 'qrkiosk-agent.service'), 'utf8');
  const m = /^ExecStart=\S*node((?:\s+--\S+)*)\s+\S*qrkiosk\.js agent/m.exec(unit);
  if (!m) throw new Error('systemd/qrkiosk-agent.service: no ExecStart=/usr/bin/node ... qrkiosk.js agent line');
  return m[1]!.split(/\s+/).filter(Boolean);
}
/** BENCH_AGENT_FLAGS overrides the unit's flags (to compare) */
const NODE_FLAGS = process.env.BENCH_AGENT_FLAGS !== undefined ? process.env.BENCH_AGENT_FLAGS.split(' ').filter(Boolean) : unitNodeFlags();

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

/** src/ compiled into `<out>/dist` as `npm run build` does, with package.json and node_modules beside it. */
export async function compileAgent(out: string): Promise<string> {
  await build({ entryPoints: sources(join(ROOT, 'src')), outdir: join(out, 'dist'), outbase: join(ROOT, 'src'), format: 'esm', platform: 'node', target: 'node20', bundle: false, logLevel: 'error' });
  // BENCH_AGENT_UNBUNDLED=1: file by file, as before the bundle step (to compare)
  if (process.env.BENCH_AGENT_UNBUNDLED !== '1') await bundleDist(join(out, 'dist'));
  copyFileSync(join(ROOT, 'package.json'), join(out, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
  return join(out, 'dist', 'cli', 'main.js');
}

interface Started {
  readyMs: number;
  pid: number;
  kill(): Promise<void>;
}

/** Spawns `node args`, resolves when a stderr line matches `ready`. */
function spawnUntil(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const t0 = performance.now();
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: p.stderr! });
    const lines: string[] = [];
    rl.on('line', (l) => {
      lines.push(l);
      if (ready.test(l)) {
        resolve({
          readyMs: performance.now() - t0,
          pid: p.pid!,
          kill: () =>
            new Promise<void>((r) => {
              if (p.exitCode !== null) return r();
              p.once('exit', () => r());
              p.kill('SIGKILL');
            }),
        });
      }
    });
    p.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code} before ready:\n${lines.slice(-10).join('\n')}`)));
  });
}

async function lowestRss(pid: number, reads = 5): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < reads; i++) {
    await new Promise((r) => setTimeout(r, 300));
    low = Math.min(low, rssMb(pid));
  }
  return low;
}

export interface AgentProcessFigures {
  nodeFlags: string[];
  startToReadyMs: number;
  bareStartMs: number;
  idleRssMb: number;
  bareRssMb: number;
  runs: number;
}

export async function benchAgentProcess(runs = 5): Promise<AgentProcessFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-agent-'));
  const relay = await startChild('bench/servers/relay.ts');
  try {
    const main = await compileAgent(join(dir, 'build'));
    const sys = join(dir, 'sysfs');
    mkdirSync(sys);
    writeFileSync(join(sys, 'bits_per_pixel'), '32\n');
    writeFileSync(join(sys, 'virtual_size'), '800,480\n');
    writeFileSync(join(sys, 'stride'), '3200\n');
    writeFileSync(join(dir, 'fb0'), '');
    const token = (relay.info.tokens as string[])[0]!;
    const config = join(dir, 'agent.yaml');
    const write = (i: number) =>
      writeFileSync(
        config,
        [
          'kioskId: k0',
          `relay: { url: "${relay.info.wsUrl as string}", token: "${token}" }`,
          `journal: { path: "${join(dir, `agent-${i}.sqlite`)}" }`,
          `control: { socket: "${join(dir, `agent-${i}.sock`)}" }`,
          'slots:',
          '  - { slot: 1, sku: COLA, stock: 8 }',
          'hardware:',
          '  buttons: { driver: none }',
          `  display: { driver: framebuffer, framebuffer: { device: "${join(dir, 'fb0')}", sysfs: "${sys}" } }`,
          '  dispenser: { driver: sim, pulseMs: 250, dropWindowMs: 1500, maxPulses: 2, sim: { fault: none, dropDelayMs: 120, slowDropMs: 2000 } }',
          '',
        ].join('\n'),
      );
    const starts: number[] = [];
    const bareStarts: number[] = [];
    let rss = Infinity;
    let bareRss = Infinity;
    for (let i = 0; i < runs; i++) {
      write(i);
      // a fresh journal each run: the start a Pi makes after a crash, minus recovery work
      const a = await spawnUntil([...NODE_FLAGS, main, 'agent', '--config', config], /"agent started"|agent started/, { NODE_ENV: 'production' });
      starts.push(a.readyMs);
      if (i === runs - 1) rss = await lowestRss(a.pid);
      await a.kill();
      const b = await spawnUntil(['-e', 'process.stderr.write("ready\\n"); setInterval(() => {}, 1000)'], /ready/);
      bareStarts.push(b.readyMs);
      if (i === runs - 1) bareRss = await lowestRss(b.pid);
      await b.kill();
    }
    return { nodeFlags: NODE_FLAGS, startToReadyMs: median(starts), bareStartMs: median(bareStarts), idleRssMb: rss, bareRssMb: bareRss, runs };
  } finally {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await benchAgentProcess(Number(process.env.BENCH_STARTS ?? 3)));
