#!/usr/bin/env node
// `npm run build`'s second step (and the release's, and bench/agent-process.ts'): tsc's dist/, one
// .js per source file, bundled into a few ES module chunks that replace it. Why: an agent that
// starts after a crash, with a customer waiting, spent most of its start loading ~430 module files
// (ours, zod's 95, yaml's 72, qrcode's 57, pino's and ws' each resolved, read and compiled one by
// one). Bundled, the same agent starts with ~1/3 less CPU and ~3 MB less resident memory
// (bench/README.md, "Agent start -> ready").
//
// - Entries keep their paths (dist/cli/main.js: what bin/qrkiosk.js runs; dist/cli/agent-entry.js).
//   Each `await import()` of a sub-command or a driver stays a separate chunk, loaded only when
//   used, so the agent still loads nothing of the relay and only the drivers its config names.
// - Only the pure-JS packages the agent loads are bundled (BUNDLED). Native addons and the relay's
//   server stack stay in node_modules, required at run time as before.
// - Identifiers are not minified (whitespace and syntax only), so stack traces read as before, with
//   source maps back to src/. esbuild renames a top-level name only where two modules clash (today
//   two functions buildDisplay, one shown as buildDisplay2); the error classes set their `name`
//   explicitly, so what is logged and compared is unchanged. Not keepNames: it costs the idle agent
//   ~1.6 MB (a `name` property defined on every function).
// - Paths next to the package (package.json, hardware/profiles/, web/) come from
//   src/runtime/package-root.ts, not from a module's depth below it, which bundling changes.
//
// Usage: node scripts/bundle-dist.mjs [DIST]   (default: dist/ of this checkout)
import { existsSync, renameSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** packages bundled into dist: the agent's pure-JS dependencies (and what they require) */
export const BUNDLED = ['zod', 'yaml', 'ws', 'pino', 'qrcode'];
/** optional native speed-ups `ws` tries to require and does without */
const OPTIONAL = ['bufferutil', 'utf-8-validate'];

/** the checkout whose node_modules the bundled packages come from (dist may be elsewhere: a release's stage) */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const packageOf = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

/** Bundles `dist` (tsc's output) in place. */
export async function bundleDist(dist) {
  const out = `${dist}.bundling`;
  rmSync(out, { recursive: true, force: true });
  await build({
    entryPoints: { 'cli/main': join(dist, 'cli', 'main.js'), 'cli/agent-entry': join(dist, 'cli', 'agent-entry.js') },
    outdir: out,
    // every chunk beside the entries: one depth for all
    chunkNames: 'cli/chunk-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: true,
    nodePaths: [join(ROOT, 'node_modules')],
    external: OPTIONAL,
    // CommonJS packages inside an ES module bundle call require() (for node builtins and the
    // packages left in node_modules): give each chunk one
    banner: { js: "import { createRequire as __qrkiosk_createRequire } from 'node:module'; const require = __qrkiosk_createRequire(import.meta.url);" },
    plugins: [
      {
        name: 'qrkiosk-externals',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (a) => {
            // inside a bundled package: bundle what it requires
            if (a.importer.includes('/node_modules/')) return undefined;
            const name = packageOf(a.path);
            if (a.path.startsWith('node:') || builtinModules.includes(name) || BUNDLED.includes(name)) return undefined;
            return { path: a.path, external: true };
          });
        },
      },
    ],
    logLevel: 'warning',
  });
  rmSync(dist, { recursive: true, force: true });
  renameSync(out, dist);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dist = resolve(process.argv[2] ?? join(ROOT, 'dist'));
  if (!existsSync(join(dist, 'cli', 'main.js'))) {
    process.stderr.write(`bundle-dist: no ${join(dist, 'cli', 'main.js')}: run tsc -p tsconfig.build.json first\n`);
    process.exit(1);
  }
  await bundleDist(dist);
}
