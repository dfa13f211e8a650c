// `npm run bench`: the speed figures quoted in README.md. Not part of `npm test`: timing targets
// belong here, where a slow machine reports a number instead of failing a build.

import { benchVendLatency } from './vend-latency.js';

const vends = Number(process.env.BENCH_VENDS ?? 200);
const r = await benchVendLatency(vends);
const f = (n: number) => n.toFixed(2);
console.log(`notification reaching the relay -> sim motor pulse, ${r.vends} vends:`);
console.log(`  median ${f(r.medianMs)} ms   p99 ${f(r.p99Ms)} ms   min ${f(r.minMs)} ms   max ${f(r.maxMs)} ms`);
console.log(JSON.stringify({ bench: 'vend-latency', ...r }));
for (const d of await (await import('./display-render.js')).benchDisplay(Number(process.env.BENCH_FRAMES ?? 200))) console.log(`${d.what}: median ${f(d.medianMs)} ms   p99 ${f(d.p99Ms)} ms (${d.runs} runs)`);
