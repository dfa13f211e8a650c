import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../runtime/package-root.js';

// Where an installed qrkiosk lives on the target machine. Releases sit side by side and a
// `current` link names the one that runs; the units and /usr/local/bin/qrkiosk go through the
// link, so an update (src/install/update.ts) is one rename of that link plus a restart.
//
//   /opt/qrkiosk/releases/<version>/   one unpacked release each (bin/, dist/, node_modules/, ...)
//   /opt/qrkiosk/current -> releases/<version>
//   /usr/local/bin/qrkiosk -> /opt/qrkiosk/current/bin/qrkiosk.js
//   /etc/qrkiosk/                      config (never overwritten), token, relay.env
//   /etc/systemd/system/qrkiosk-*.service, /etc/udev/rules.d/*.rules

export const PREFIX = '/opt/qrkiosk';
export const RELEASES = `${PREFIX}/releases`;
export const CURRENT = `${PREFIX}/current`;
export const ETC = '/etc/qrkiosk';
export const UNIT_DIR = '/etc/systemd/system';
export const UDEV_DIR = '/etc/udev/rules.d';
export const PAM_DIR = '/etc/pam.d';
export const COMMAND_LINK = '/usr/local/bin/qrkiosk';
export const SERVICE_USER = 'qrkiosk';
/** Groups whose devices the agent uses; only those that exist on the machine are joined. */
export const AGENT_GROUPS = ['gpio', 'dialout', 'plugdev', 'video', 'input', 'lp'] as const;

export type Role = 'agent' | 'relay';

/** A path on the target system under --root (or / for a real install). */
export function onTarget(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

export interface ReleaseManifest {
  name: 'qrkiosk';
  version: string;
  node: { version: string; major: number; abi: string };
  platform: string;
  arch: string;
  builtAt: string;
}

/** The release this program runs from (the directory of its package.json). */
export function runningReleaseDir(): string {
  return packageRoot();
}

export class NotARelease extends Error {
  override name = 'NotARelease';
}

export function readManifest(dir: string): ReleaseManifest {
  const path = join(dir, 'release.json');
  if (!existsSync(path)) {
    throw new NotARelease(`${dir} is not a qrkiosk release (no release.json): make one with \`npm run release\` and run its bin/qrkiosk.js`);
  }
  let m: Partial<ReleaseManifest>;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as Partial<ReleaseManifest>;
  } catch (err) {
    throw new NotARelease(`${path} is not valid JSON (${(err as Error).message}): the release is damaged, unpack it again`);
  }
  if (m.name !== 'qrkiosk' || typeof m.version !== 'string' || !m.node?.abi) {
    throw new NotARelease(`${path} does not describe a qrkiosk release: unpack the release again`);
  }
  return m as ReleaseManifest;
}

/** Why this release cannot run with this Node on this machine, or undefined. */
export function incompatibility(m: ReleaseManifest, versions = process.versions, arch = process.arch, platform = process.platform): string | undefined {
  if (m.platform !== platform || m.arch !== arch) {
    return `release ${m.version} is built for ${m.platform}-${m.arch}, this machine is ${platform}-${arch}: use the ${platform}-${arch} release`;
  }
  if (m.node.abi !== versions.modules) {
    return `release ${m.version} is built for Node ${m.node.major}, this is Node ${versions.node}: use the release built for Node ${versions.node.split('.')[0]}, or install Node ${m.node.major} (README: Deploy on a Raspberry Pi)`;
  }
  return undefined;
}

/** A release directory's name: the version, made safe for a path. */
export function releaseDirName(version: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version)) throw new NotARelease(`release version "${version}" is not a plain version string`);
  return version;
}
