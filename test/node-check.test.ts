import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { howToGetNode, nodeProblem } from '../bin/node-check.js';

// The first thing `qrkiosk` does: is this Node able to run it, and if not, exactly what to type.

const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-node-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const BOOKWORM = { codename: 'bookworm', pretty: 'Debian GNU/Linux 12 (bookworm)' };
const TRIXIE = { codename: 'trixie', pretty: 'Debian GNU/Linux 13 (trixie)' };

describe('Node version check', () => {
  it('on Bookworm (nodejs 18) says to take Node from NodeSource or nodejs.org', () => {
    const msg = nodeProblem(pathToFileURL(dir + '/'), { node: '18.19.0', modules: '108' }, BOOKWORM)!;
    expect(msg).toMatch(/^qrkiosk needs Node 20 or newer; this is Node 18\.19\.0\./);
    expect(msg).toMatch(/Debian 12 ships 18/);
    expect(msg).toContain('https://deb.nodesource.com/setup_22.x');
    expect(msg).toContain('sudo apt-get install -y nodejs');
    expect(msg).toMatch(/nodejs\.org/);
  });

  it('on Trixie says its own package is Node 20', () => {
    expect(howToGetNode(20, TRIXIE)).toMatch(/its own package is Node 20:\n\s+sudo apt-get install -y nodejs$/);
  });

  it('a release refuses another Node major than the one it was built with, from bin/qrkiosk.js itself', () => {
    const rel = join(dir, 'rel');
    mkdirSync(rel);
    cpSync(resolve(import.meta.dirname, '..', 'bin'), join(rel, 'bin'), { recursive: true });
    writeFileSync(join(rel, 'release.json'), JSON.stringify({ name: 'qrkiosk', version: '9.9.9', node: { version: '18.19.0', major: 18, abi: '108' } }));
    const r = spawnSync(process.execPath, [join(rel, 'bin', 'qrkiosk.js'), '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^qrkiosk 9\\.9\\.9 was built for Node 18 \\(its native parts only load there\\); this is Node ${process.versions.node}\\.`));
    expect(r.stderr).toContain('setup_18.x');
  });
});
