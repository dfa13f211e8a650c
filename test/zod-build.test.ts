import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every schema is written with zod/mini (src/runtime/zod.ts says why): one module importing the
// method-chain build ('zod') brings all of zod, every locale included, back into the Pi's agent.

const SRC = resolve(import.meta.dirname, '..', 'src');
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

describe('zod in src/', () => {
  it('no module imports the method-chain build or re-exports the zod/mini namespace', () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      if (/from ['"]zod['"]|from ['"]zod\/v4['"]|require\(['"]zod['"]\)/.test(text)) offenders.push(`${relative(SRC, file)}: imports 'zod'`);
      if (/export \{[^}]*\bz\b[^}]*\}/.test(text) && /import \* as z from 'zod\/mini'/.test(text)) offenders.push(`${relative(SRC, file)}: re-exports z`);
    }
    expect(offenders).toEqual([]);
  });
});
