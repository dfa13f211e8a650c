import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// The release artifact exactly as `npm run release` makes it (scripts/release.mjs), unpacked in a
// temp directory: tests of install and update run the compiled JavaScript from it with plain node.

export const REPO = resolve(import.meta.dirname, '..', '..');
/** time for tsc to compile the whole program on a busy 2-core machine */
export const BUILD_TIMEOUT_MS = 600_000;

export function buildRelease(opts: { tar?: boolean } = {}): { out: string; dir: string; version: string; tarball: string | undefined } {
  const out = mkdtempSync(join(tmpdir(), 'qrkiosk-release-'));
  const text = execFileSync(process.execPath, [join(REPO, 'scripts', 'release.mjs'), '--out', out, ...(opts.tar ? [] : ['--no-tar'])], { encoding: 'utf8', cwd: REPO });
  const version = (JSON.parse(execFileSync('cat', [join(REPO, 'package.json')], { encoding: 'utf8' })) as { version: string }).version;
  if (!text.includes('release:')) throw new Error(`release script said: ${text}`);
  const tarball = opts.tar ? /release: (\S+\.tar\.gz)/.exec(text)?.[1] : undefined;
  return { out, dir: join(out, `qrkiosk-${version}`), version, tarball };
}
