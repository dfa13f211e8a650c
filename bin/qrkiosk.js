#!/usr/bin/env node
// Runs the compiled CLI when `npm run build` has made dist/, else the TypeScript sources through
// tsx, so a checkout works with no build step and an installed package runs plain JavaScript.
// QRKIOSK_RUN_SOURCES=1 forces the sources: the test suite sets it, so a stale dist/ left by an
// earlier build can never be what the tests exercise.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(dist) && process.env.QRKIOSK_RUN_SOURCES !== '1') {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
