import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The directory that holds qrkiosk's package.json (and hardware/profiles/, web/): the checkout, or
// the release a Pi runs. Found by walking up from this module's file rather than by a fixed
// number of `../`: the built dist/ is bundled (scripts/bundle-dist.mjs), so a module no longer
// sits at its source file's depth there, while under tsx it does.

let root: string | undefined;

export function packageRoot(): string {
  if (root !== undefined) return root;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return (root = dir);
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}: qrkiosk is not installed as a package`);
  }
}
