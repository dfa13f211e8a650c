// The Node.js check every start makes before loading anything else, written in plain JavaScript
// that any Node can parse: on Raspberry Pi OS Bookworm (Debian 12) `apt install nodejs` gives 18,
// which cannot load qrkiosk's dependencies, and the error it would print is meaningless to a
// technician. Also: a release's native addons (better-sqlite3, epoll, node-hid, serialport) are
// built for ONE Node major (release.json), so a release must run on that major.
import { existsSync, readFileSync } from 'node:fs';

export const MIN_NODE_MAJOR = 20;

/** VERSION_CODENAME and PRETTY_NAME of /etc/os-release (empty when absent). */
export function readOsRelease(path = '/etc/os-release') {
  const out = { codename: '', pretty: '' };
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const m = /^(VERSION_CODENAME|PRETTY_NAME)=(.*)$/.exec(line.trim());
      if (!m) continue;
      const v = m[2].replace(/^["']|["']$/g, '');
      if (m[1] === 'VERSION_CODENAME') out.codename = v;
      else out.pretty = v;
    }
  } catch {
    /* not Linux, or a minimal container */
  }
  return out;
}

/** Exactly what to type to get Node `major` on this OS. */
export function howToGetNode(major, os) {
  const tarball =
    `  or the official build from nodejs.org (no apt repository):\n` +
    `    curl -fsSL https://nodejs.org/dist/latest-v${major}.x/ | grep -o 'node-v${major}[^"]*-linux-arm64.tar.xz' | head -1   # its name\n` +
    `    sudo tar -C /usr/local --strip-components=1 -xJf node-v${major}.*-linux-arm64.tar.xz   # then node is /usr/local/bin/node\n` +
    `    (use -linux-armv7l on a 32-bit Raspberry Pi OS)`;
  const nodesource =
    `    curl -fsSL https://deb.nodesource.com/setup_${major}.x -o nodesource_setup.sh\n` +
    `    sudo bash nodesource_setup.sh && sudo apt-get install -y nodejs`;
  if (os.codename === 'bookworm' || os.codename === 'bullseye') {
    return (
      `${os.pretty || 'Debian ' + os.codename}: its own nodejs package is too old (Debian 12 ships 18). Install Node ${major} from NodeSource:\n` +
      `${nodesource}\n${tarball}`
    );
  }
  if (os.codename === 'trixie' && major === 20) {
    return `${os.pretty || 'Debian 13'}: its own package is Node 20:\n    sudo apt-get install -y nodejs`;
  }
  return `Install Node ${major}, e.g. from NodeSource:\n${nodesource}\n${tarball}`;
}

/**
 * undefined when this Node can run the program at `root`, else the message to print. A release
 * (root/release.json) needs its exact Node major; a checkout needs MIN_NODE_MAJOR or newer.
 */
export function nodeProblem(root, versions = process.versions, os = readOsRelease()) {
  const major = Number(versions.node.split('.')[0]);
  let manifest;
  const path = new URL('release.json', root);
  if (existsSync(path)) {
    try {
      manifest = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      manifest = undefined;
    }
  }
  if (manifest?.node?.abi && manifest.node.abi !== versions.modules) {
    return (
      `qrkiosk ${manifest.version} was built for Node ${manifest.node.major} (its native parts only load there); this is Node ${versions.node}.\n` +
      howToGetNode(manifest.node.major, os) +
      `\n  or use the qrkiosk release built for Node ${major}.`
    );
  }
  if (major < MIN_NODE_MAJOR) {
    return `qrkiosk needs Node ${MIN_NODE_MAJOR} or newer; this is Node ${versions.node}.\n` + howToGetNode(Math.max(MIN_NODE_MAJOR, 22), os);
  }
  return undefined;
}
