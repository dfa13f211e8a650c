#!/usr/bin/env node
// `npm run release`: the artifact a kiosk or a relay runs from. One directory, packed as
// release/qrkiosk-<version>-linux-<arch>-node<major>.tar.gz:
//   dist/            the compiled JavaScript (tsc -p tsconfig.build.json, then bundled by
//                    scripts/bundle-dist.mjs): no tsx at run time
//   bin/qrkiosk.js   the entry; it runs dist/ and checks the Node version first
//   node_modules/    production dependencies only, copied from this checkout's node_modules
//   systemd/ hardware/udev/ hardware/profiles/ examples/ docs/   what `qrkiosk install` puts in place
//   web/             the operator console's pages, served by the relay
//   release.json     version, and the Node ABI and CPU the native addons were built for
// The native addons (better-sqlite3, epoll, node-hid, serialport) are compiled for one Node major
// and one CPU, so build the release on the kind of machine that runs it (an arm64 Pi, or an arm64
// CI runner) with the Node major it will run; `qrkiosk install` and bin/qrkiosk.js refuse a mismatch.
//
// Options: --out DIR (default release/), --no-tar (leave only the directory).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleDist } from './bundle-dist.mjs';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const { values } = parseArgs({ options: { out: { type: 'string' }, 'no-tar': { type: 'boolean' } } });
const out = resolve(values.out ?? join(ROOT, 'release'));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const major = process.versions.node.split('.')[0];
const name = `qrkiosk-${pkg.version}`;
const stage = join(out, name);

rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });

// 1. compiled JavaScript
execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(stage, 'dist')], {
  stdio: 'inherit',
});
// bundled as `npm run build` does (scripts/bundle-dist.mjs: a faster agent start)
await bundleDist(join(stage, 'dist'));

// 2. what ships beside it
const copy = (rel, filter) => {
  const from = join(ROOT, rel);
  if (existsSync(from)) cpSync(from, join(stage, rel), { recursive: true, ...(filter ? { filter } : {}) });
};
copy('bin');
copy('systemd');
copy('hardware/udev');
copy('hardware/profiles');
for (const f of ['README.md', 'TROUBLESHOOTING.md', 'WIRING.md']) copy(join('hardware', f));
copy('examples');
// the relay's operator console serves these files (src/relay/console/web/routes.ts)
copy('web');
copy('docs', (src) => !src.includes(`${join('docs', 'screens')}`));
copy('README.md');
copy('LICENSE');

// 3. package.json without the development side
const { devDependencies: _dev, scripts: _scripts, allowScripts: _allow, ...runtime } = pkg;
writeFileSync(join(stage, 'package.json'), JSON.stringify(runtime, null, 2) + '\n');

// 4. production dependencies: the closure of package.json's dependencies in package-lock.json,
//    copied from node_modules (so the build needs no network and the addons are the ones tested)
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
const resolveDep = (from, dep) => {
  let p = from;
  for (;;) {
    const candidate = `${p ? p + '/' : ''}node_modules/${dep}`;
    if (lock.packages[candidate]) return candidate;
    if (!p) return undefined;
    const i = p.lastIndexOf('/node_modules/');
    p = i < 0 ? '' : p.slice(0, i);
  }
};
const prod = new Set();
const todo = [''];
while (todo.length > 0) {
  const at = todo.pop();
  const entry = lock.packages[at];
  const deps = at === '' ? { ...pkg.dependencies } : { ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies };
  for (const dep of Object.keys(deps)) {
    const found = resolveDep(at, dep);
    if (found && !prod.has(found)) {
      prod.add(found);
      todo.push(found);
    }
  }
}
// build leftovers of the native addons (object files, sqlite's C sources): only the .node files run
const BUILD_LEFTOVERS = /\/build\/(Release\/(obj|obj\.target|\.deps)|deps)(\/|$)|\/better-sqlite3\/(deps|src)(\/|$)/;
let copied = 0;
for (const p of [...prod].sort()) {
  const from = join(ROOT, p);
  if (!existsSync(from)) continue; // an optional dependency for another platform
  cpSync(from, join(stage, p), { recursive: true, dereference: true, filter: (src) => !BUILD_LEFTOVERS.test(src) });
  copied++;
}

// 5. the manifest `qrkiosk install`/`update` and bin/qrkiosk.js read
const manifest = {
  name: 'qrkiosk',
  version: pkg.version,
  node: { version: process.versions.node, major: Number(major), abi: process.versions.modules },
  platform: process.platform,
  arch: process.arch,
  builtAt: new Date().toISOString(),
};
writeFileSync(join(stage, 'release.json'), JSON.stringify(manifest, null, 2) + '\n');

if (!values['no-tar']) {
  const tarball = join(out, `${name}-${process.platform}-${process.arch}-node${major}.tar.gz`);
  execFileSync('tar', ['-C', out, '-czf', tarball, name]);
  console.log(`release: ${tarball} (${copied} production packages; runs on Node ${major}, ${process.platform}-${process.arch})`);
} else {
  console.log(`release: ${stage} (${copied} production packages; runs on Node ${major}, ${process.platform}-${process.arch})`);
}
