#!/usr/bin/env node
// The `qrkiosk` command. First checks that this Node can run it (bin/node-check.js: says exactly
// how to get a supported Node on Raspberry Pi OS Bookworm or Trixie). Then runs the compiled CLI
// in dist/ (a release from `npm run release` has only that), else, in a checkout without a build,
// the TypeScript sources through tsx (a development dependency).
// QRKIOSK_RUN_SOURCES=1 forces the sources: the test suite sets it, so a stale dist/ left by an
// earlier build can never be what the tests exercise (a release has no sources and ignores it).
import { existsSync } from 'node:fs';
import { nodeProblem } from './node-check.js';

const problem = nodeProblem(new URL('../', import.meta.url));
if (problem) {
  process.stderr.write(problem + '\n');
  process.exit(1);
}

const dist = new URL('../dist/cli/main.js', import.meta.url);
const sources = new URL('../src/cli/main.ts', import.meta.url);
// a release has no sources: it always runs dist/
const runSources = existsSync(sources) && (process.env.QRKIOSK_RUN_SOURCES === '1' || !existsSync(dist));
if (runSources) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else if (existsSync(dist)) {
  await import(dist.href);
} else {
  process.stderr.write(`qrkiosk: no dist/ here (${new URL('../', import.meta.url).pathname}): run npm run build, or use a release tarball\n`);
  process.exit(1);
}
