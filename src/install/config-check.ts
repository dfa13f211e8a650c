import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { AgentConfigSchema } from '../agent/config.js';
import { withProfileBase } from '../agent/hardware-config.js';
import { relayConfigSchema } from '../relay/config.js';
import { checkConfigText, type ConfigProblem } from '../runtime/config-file.js';
import { SERVICE_USER } from './layout.js';

// `qrkiosk config check FILE`: every mistake of an agent or relay config at once, then what can be
// checked of the machine the file is meant for (devices there, the service user allowed to open
// them, the relay's host name resolving). The schema is the same one the programs load with.

export type ConfigKind = 'agent' | 'relay';

export interface CheckProblem extends ConfigProblem {
  /** `config`: the file itself; `machine`: this machine does not match it */
  area: 'config' | 'machine';
}

export interface CheckReport {
  file: string;
  kind: ConfigKind;
  problems: CheckProblem[];
}

export interface MachineView {
  groupFile: string;
  passwdFile: string;
  /** the user the service runs as (qrkiosk) */
  user: string;
  resolve: (host: string) => Promise<void>;
}

const DNS_TIMEOUT_MS = 3000;

async function resolveHost(host: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      lookup(host),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${DNS_TIMEOUT_MS / 1000} s`)), DNS_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const THIS_MACHINE: MachineView = { groupFile: '/etc/group', passwdFile: '/etc/passwd', user: SERVICE_USER, resolve: resolveHost };

/** agent or relay, from the keys only one of them has. */
export function detectKind(data: unknown): ConfigKind | undefined {
  if (!data || typeof data !== 'object') return undefined;
  const keys = Object.keys(data);
  if (keys.some((k) => ['kioskId', 'slots', 'hardware', 'journal'].includes(k))) return 'agent';
  if (keys.some((k) => ['listen', 'mercadopago', 'catalog', 'publicUrl', 'store'].includes(k))) return 'relay';
  return undefined;
}

/** Every string under `hardware` that names a device file (/dev/...), with its key path. */
function devicePaths(node: unknown, path: string[] = []): Array<{ key: string; path: string }> {
  if (typeof node === 'string') return node.startsWith('/dev/') ? [{ key: path.join('.'), path: node }] : [];
  if (!node || typeof node !== 'object') return [];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) => devicePaths(v, [...path, k]));
}

function table(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0]) out.set(f[0], f);
  }
  return out;
}

async function machineProblems(kind: ConfigKind, data: Record<string, unknown>, m: MachineView): Promise<CheckProblem[]> {
  const out: CheckProblem[] = [];
  const machine = (key: string, message: string) => out.push({ area: 'machine', key, message });
  if (kind === 'agent') {
    const users = table(m.passwdFile);
    const groupsById = new Map([...table(m.groupFile).values()].map((g) => [Number(g[2]), g]));
    const account = users.get(m.user);
    if (!account) machine('(machine)', `there is no user ${m.user} here: run sudo qrkiosk install agent (it creates it)`);
    for (const d of devicePaths(data.hardware, ['hardware'])) {
      if (!existsSync(d.path)) {
        machine(d.key, `${d.path} does not exist on this machine: plug the device in, or find its name (ls /dev/serial/by-id /dev/input/by-id /dev/fb* /dev/usb/)`);
        continue;
      }
      if (!account) continue;
      const gid = statSync(d.path).gid;
      const group = groupsById.get(gid);
      const member = Number(account[3]) === gid || (group?.[3] ?? '').split(',').includes(m.user);
      const mode = statSync(d.path).mode;
      if (!member && (mode & 0o006) !== 0o006) {
        machine(
          d.key,
          `${m.user} may not open ${d.path} (group ${group?.[0] ?? gid}): sudo usermod -aG ${group?.[0] ?? gid} ${m.user}, or install the udev rules (sudo qrkiosk install agent)`,
        );
      }
    }
    const relay = data.relay as { url?: unknown } | undefined;
    if (typeof relay?.url === 'string') {
      let host: string | undefined;
      try {
        host = new URL(relay.url).hostname.replace(/^\[|\]$/g, '');
      } catch {
        host = undefined; // the schema already said what is wrong with the url
      }
      if (host) {
        try {
          await m.resolve(host);
        } catch (err) {
          machine('relay.url', `the relay host ${host} does not resolve from here (${(err as Error).message}): check the spelling, the network and /etc/resolv.conf`);
        }
      }
    }
  } else {
    const store = data.store as { path?: unknown } | undefined;
    if (typeof store?.path === 'string' && !existsSync(dirname(store.path))) {
      machine('store.path', `the folder ${dirname(store.path)} does not exist: create it, or let systemd's StateDirectory make /var/lib/qrkiosk`);
    }
  }
  return out;
}

export async function checkConfigFile(file: string, opts: { kind?: ConfigKind; machine?: MachineView | false } = {}): Promise<CheckReport> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { file, kind: opts.kind ?? 'agent', problems: [{ area: 'config', key: '(file)', message: `cannot read ${file}: ${(err as Error).message}` }] };
  }
  let data: unknown;
  try {
    data = parseDocument(text).toJS();
  } catch {
    data = undefined;
  }
  const kind = opts.kind ?? detectKind(data);
  if (!kind) {
    return {
      file,
      kind: 'agent',
      problems: [{ area: 'config', key: '(top level)', message: 'cannot tell whether this is an agent or a relay config: say so with --kind agent|relay' }],
    };
  }
  // relay secrets come from relay.env under systemd; the check must not demand them in the file
  const schema = kind === 'agent' ? AgentConfigSchema : relayConfigSchema({ QRKIOSK_MP_ACCESS_TOKEN: 'checked-separately' });
  const r = withProfileBase(dirname(resolve(file)), () => checkConfigText<unknown>(text, schema as never));
  const problems: CheckProblem[] = r.problems.map((p) => ({ area: 'config', ...p }));
  if (opts.machine !== false && data && typeof data === 'object') {
    problems.push(...(await machineProblems(kind, data as Record<string, unknown>, opts.machine ?? THIS_MACHINE)));
  }
  return { file, kind, problems };
}
