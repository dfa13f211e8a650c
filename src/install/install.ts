import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  AGENT_GROUPS,
  COMMAND_LINK,
  CURRENT,
  ETC,
  PAM_DIR,
  RELEASES,
  SERVICE_USER,
  UDEV_DIR,
  UNIT_DIR,
  incompatibility,
  onTarget,
  readManifest,
  releaseDirName,
  type ReleaseManifest,
  type Role,
} from './layout.js';

// `qrkiosk install agent|relay`: puts a release in place on this machine. The work is a list of
// steps, each able to tell whether it is already done, so a second run changes nothing, --dry-run
// prints the same list and touches nothing, and --root DIR writes the files into a directory tree
// (the system steps that need the real machine, useradd and systemctl, are printed, not run).
// Config files are written only when absent: a technician's edits are never overwritten.

export interface InstallOptions {
  role: Role;
  /** target filesystem root; '/' for a real install */
  root: string;
  dryRun: boolean;
  /** the unpacked release to install (the one this program runs from) */
  releaseDir: string;
  /** a bundled profile name (hardware/profiles/<name>.yaml) for a new agent.yaml */
  profile?: string;
  /** a file holding the kiosk token, copied into /etc/qrkiosk/token (0400) when that is empty */
  tokenFile?: string;
  /** the node binary the units run (default: the one running this) */
  nodePath?: string;
  /** runs a system command (tests never reach it: they use --root) */
  exec?: (cmd: string, args: string[]) => string;
}

export type StepKind = 'file' | 'system';

export interface Step {
  kind: StepKind;
  /** what the step does, as a person reads it */
  what: string;
  /** false when the machine is already as the step would leave it */
  needed(): boolean;
  apply(): void;
}

export interface StepReport {
  what: string;
  outcome: 'done' | 'already' | 'would' | 'skipped';
}

export interface InstallReport {
  role: Role;
  root: string;
  dryRun: boolean;
  version: string;
  steps: StepReport[];
  changed: number;
  /** what the person still has to do */
  todo: string[];
}

export class InstallError extends Error {
  override name = 'InstallError';
}

const defaultExec = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** One line per entry of /etc/passwd or /etc/group: name -> fields. */
function readTable(path: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!existsSync(path)) return out;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(':');
    out.set(fields[0]!, fields);
  }
  return out;
}

function sameFile(path: string, content: string | Buffer): boolean {
  try {
    return readFileSync(path).equals(Buffer.isBuffer(content) ? content : Buffer.from(content));
  } catch {
    return false;
  }
}

function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return undefined;
  }
}

function linkTarget(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes via a temporary file and a rename, so a power cut never leaves half a unit file. */
function writeAtomic(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.qrkiosk-new`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function symlinkAtomic(path: string, target: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.qrkiosk-new`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

/**
 * A unit file as installed: the program runs from the `current` release with the node binary
 * found at install time (NodeSource puts it in /usr/bin, the nodejs.org tarball in /usr/local/bin).
 */
export function renderUnit(text: string, nodePath: string): string {
  return text.replace(/\/usr\/bin\/node(?=\s)/g, nodePath).replace(/\/opt\/qrkiosk\/(?!current\/|releases\/)/g, `${CURRENT}/`);
}

/** The unit files of a role: the relay's, or everything else (agent, display, safe-state...). */
export function unitsFor(role: Role, releaseDir: string): string[] {
  const dir = join(releaseDir, 'systemd');
  const all = readdirSync(dir).filter((f) => /\.(service|socket|timer|path|target)$/.test(f));
  return all.filter((f) => (role === 'relay' ? f.includes('relay') : !f.includes('relay'))).sort();
}

/** A unit is started at boot when it has an [Install] section; the screen only with display.driver web. */
function enableAtBoot(unitText: string, name: string): boolean {
  return /^\[Install\]/m.test(unitText) && name !== 'qrkiosk-display.service';
}

/** A new agent.yaml: the example config with its hardware section taken from a profile. */
export function agentConfigFromProfile(releaseDir: string, profile: string | undefined): string {
  const example = readFileSync(join(releaseDir, 'examples', 'agent.yaml'), 'utf8');
  if (!profile) return example;
  const file = join(releaseDir, 'hardware', 'profiles', `${profile}.yaml`);
  if (!existsSync(file)) {
    const known = readdirSync(join(releaseDir, 'hardware', 'profiles'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''));
    throw new InstallError(`--profile ${profile}: there is no such profile; use one of ${known.join(', ')}`);
  }
  const head = example.split(/^hardware:/m)[0]!;
  return (
    `${head}hardware:\n` +
    `  profile: ${profile}          # hardware/profiles/${profile}.yaml; keys written here override it (docs/config.md)\n` +
    `  display: { driver: framebuffer }\n`
  );
}

export function planInstall(opts: InstallOptions): { manifest: ReleaseManifest; steps: Step[]; todo: string[] } {
  const { role, root } = opts;
  const real = root === '/';
  const exec = opts.exec ?? defaultExec;
  const t = (p: string) => onTarget(root, p);
  const manifest = readManifest(opts.releaseDir);
  const bad = incompatibility(manifest);
  if (bad) throw new InstallError(bad);
  const nodePath = opts.nodePath ?? process.execPath;
  const steps: Step[] = [];
  const todo: string[] = [];
  const file = (what: string, needed: () => boolean, apply: () => void) => steps.push({ kind: 'file', what, needed, apply });
  const system = (what: string, needed: () => boolean, apply: () => void) => steps.push({ kind: 'system', what, needed, apply });

  // ---- the service user and its groups ----------------------------------------------------------
  const passwd = () => readTable(t('/etc/passwd'));
  const groups = () => readTable(t('/etc/group'));
  system(
    `create the system user ${SERVICE_USER} (group ${SERVICE_USER}, home /var/lib/qrkiosk, no login): useradd --system --user-group --home-dir /var/lib/qrkiosk --no-create-home --shell /usr/sbin/nologin ${SERVICE_USER}`,
    () => !passwd().has(SERVICE_USER),
    () => exec('useradd', ['--system', '--user-group', '--home-dir', '/var/lib/qrkiosk', '--no-create-home', '--shell', '/usr/sbin/nologin', SERVICE_USER]),
  );
  if (role === 'agent') {
    const existing = AGENT_GROUPS.filter((g) => groups().has(g));
    const absent = AGENT_GROUPS.filter((g) => !groups().has(g));
    if (absent.length > 0) {
      todo.push(`groups ${absent.join(', ')} do not exist here, so ${SERVICE_USER} was not added to them (the udev rules give those devices to group ${SERVICE_USER} instead)`);
    }
    const missing = () => existing.filter((g) => !(groups().get(g)?.[3] ?? '').split(',').includes(SERVICE_USER));
    if (existing.length > 0) {
      system(
        `add ${SERVICE_USER} to the device groups that exist here (${existing.join(', ')}): usermod -aG ${existing.join(',')} ${SERVICE_USER}`,
        () => missing().length > 0,
        () => exec('usermod', ['-aG', missing().join(','), SERVICE_USER]),
      );
    }
  }

  // ---- the release, side by side with others, and the `current` link ---------------------------
  const version = releaseDirName(manifest.version);
  const releaseTarget = t(`${RELEASES}/${version}`);
  const sameDir = resolve(opts.releaseDir) === resolve(releaseTarget);
  file(
    `copy release ${version} to ${RELEASES}/${version}`,
    () => !sameDir && !existsSync(join(releaseTarget, 'release.json')),
    () => {
      const tmp = `${releaseTarget}.partial`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(dirname(tmp), { recursive: true });
      cpSync(opts.releaseDir, tmp, { recursive: true, verbatimSymlinks: true });
      renameSync(tmp, releaseTarget);
    },
  );
  const currentTarget = linkTarget(t(CURRENT));
  if (currentTarget !== undefined && currentTarget !== `releases/${version}`) {
    todo.push(`${CURRENT} points to ${currentTarget}, left as it is: switch with \`sudo qrkiosk update ${version}\``);
  }
  file(
    `link ${CURRENT} -> releases/${version}`,
    () => linkTarget(t(CURRENT)) === undefined,
    () => symlinkAtomic(t(CURRENT), `releases/${version}`),
  );
  file(
    `link ${COMMAND_LINK} -> ${CURRENT}/bin/qrkiosk.js`,
    () => linkTarget(t(COMMAND_LINK)) !== `${CURRENT}/bin/qrkiosk.js`,
    () => symlinkAtomic(t(COMMAND_LINK), `${CURRENT}/bin/qrkiosk.js`),
  );

  // ---- /etc/qrkiosk: written only when absent ---------------------------------------------------
  const ownBy = (path: string, user: string | undefined, group: string | undefined) => {
    if (!real) return; // no such user in a --root tree; modes still apply
    const uid = user === undefined ? -1 : Number(passwd().get(user)?.[2] ?? -1);
    const gid = group === undefined ? -1 : Number(groups().get(group)?.[2] ?? -1);
    chownSync(path, uid, gid);
  };
  file(
    `create ${ETC} (0750, group ${SERVICE_USER})`,
    () => modeOf(t(ETC)) !== 0o750,
    () => {
      mkdirSync(t(ETC), { recursive: true });
      chmodSync(t(ETC), 0o750);
      ownBy(t(ETC), undefined, SERVICE_USER);
    },
  );
  const writeIfAbsent = (path: string, content: () => string, mode: number, user: string | undefined, group: string | undefined, note: string) =>
    file(
      `write ${path} (${mode.toString(8).padStart(4, '0')}) ${note}`,
      () => !existsSync(t(path)),
      () => {
        writeAtomic(t(path), content(), mode);
        ownBy(t(path), user, group);
      },
    );
  if (role === 'agent') {
    writeIfAbsent(`${ETC}/agent.yaml`, () => agentConfigFromProfile(opts.releaseDir, opts.profile), 0o640, undefined, SERVICE_USER, opts.profile ? `from profile ${opts.profile}` : 'from examples/agent.yaml');
    const tokenPath = t(`${ETC}/token`);
    const token = opts.tokenFile ? readFileSync(opts.tokenFile, 'utf8').trim() : '';
    if (opts.tokenFile && !/^\S{8,}$/.test(token)) throw new InstallError(`--token-file ${opts.tokenFile}: holds no token; it must contain only the token printed by \`qrkiosk relay kiosk add\``);
    file(
      `write ${ETC}/token (0400, owner ${SERVICE_USER})${token ? ` from ${opts.tokenFile}` : ' empty, for the kiosk token'}`,
      () => !existsSync(tokenPath) || (token !== '' && readFileSync(tokenPath, 'utf8').trim() === '') || modeOf(tokenPath) !== 0o400,
      () => {
        const current = existsSync(tokenPath) ? readFileSync(tokenPath, 'utf8').trim() : '';
        writeAtomic(tokenPath, current || (token ? token + '\n' : ''), 0o400);
        ownBy(tokenPath, SERVICE_USER, SERVICE_USER);
      },
    );
  } else {
    writeIfAbsent(`${ETC}/relay.yaml`, () => readFileSync(join(opts.releaseDir, 'examples', 'relay.yaml'), 'utf8'), 0o640, undefined, SERVICE_USER, 'from examples/relay.yaml');
    writeIfAbsent(
      `${ETC}/relay.env`,
      () => '# Read by systemd for qrkiosk-relay (root only). Your Mercado Pago access token:\n# QRKIOSK_MP_ACCESS_TOKEN=APP_USR-...\n',
      0o600,
      undefined,
      undefined,
      'for the Mercado Pago access token',
    );
  }

  // ---- units, PAM file, udev rules: always the release's version ---------------------------------
  const units = unitsFor(role, opts.releaseDir);
  const renderedUnit = (u: string) => renderUnit(readFileSync(join(opts.releaseDir, 'systemd', u), 'utf8'), nodePath);
  // a dry run applies nothing, so it judges the reloads by what would change
  let unitsChanged = opts.dryRun && units.some((u) => !sameFile(t(`${UNIT_DIR}/${u}`), renderedUnit(u)));
  for (const u of units) {
    const content = renderedUnit(u);
    file(
      `install ${UNIT_DIR}/${u}`,
      () => !sameFile(t(`${UNIT_DIR}/${u}`), content),
      () => {
        writeAtomic(t(`${UNIT_DIR}/${u}`), content, 0o644);
        unitsChanged = true;
      },
    );
  }
  if (role === 'agent') {
    const pamDir = join(opts.releaseDir, 'systemd', 'pam.d');
    for (const p of existsSync(pamDir) ? readdirSync(pamDir).sort() : []) {
      const content = readFileSync(join(pamDir, p));
      file(`install ${PAM_DIR}/${p}`, () => !sameFile(t(`${PAM_DIR}/${p}`), content), () => writeAtomic(t(`${PAM_DIR}/${p}`), content, 0o644));
    }
    const udevDir = join(opts.releaseDir, 'hardware', 'udev');
    const rules = existsSync(udevDir) ? readdirSync(udevDir).filter((f) => f.endsWith('.rules')).sort() : [];
    let rulesChanged = opts.dryRun && rules.some((r) => !sameFile(t(`${UDEV_DIR}/${r}`), readFileSync(join(udevDir, r))));
    for (const r of rules) {
      const content = readFileSync(join(udevDir, r));
      file(
        `install ${UDEV_DIR}/${r}`,
        () => !sameFile(t(`${UDEV_DIR}/${r}`), content),
        () => {
          writeAtomic(t(`${UDEV_DIR}/${r}`), content, 0o644);
          rulesChanged = true;
        },
      );
    }
    system(
      'reload the udev rules and apply them to present devices: udevadm control --reload-rules && udevadm trigger',
      () => rulesChanged,
      () => {
        exec('udevadm', ['control', '--reload-rules']);
        exec('udevadm', ['trigger']);
      },
    );
  }
  system('reload systemd: systemctl daemon-reload', () => unitsChanged, () => exec('systemctl', ['daemon-reload']));

  // ---- start at boot, and now when the secrets are there ----------------------------------------
  const isState = (verb: string, unit: string, want: string) => {
    if (!real) return false;
    try {
      return exec('systemctl', [verb, unit]).trim() === want;
    } catch {
      return false;
    }
  };
  const boot = units.filter((u) => enableAtBoot(readFileSync(join(opts.releaseDir, 'systemd', u), 'utf8'), u));
  for (const u of boot) system(`start ${u} at boot: systemctl enable ${u}`, () => !isState('is-enabled', u, 'enabled'), () => exec('systemctl', ['enable', u]));
  const main = role === 'agent' ? 'qrkiosk-agent.service' : 'qrkiosk-relay.service';
  const secretsReady = () =>
    role === 'agent'
      ? existsSync(t(`${ETC}/token`)) && readFileSync(t(`${ETC}/token`), 'utf8').trim() !== ''
      : existsSync(t(`${ETC}/relay.env`)) && /^QRKIOSK_MP_ACCESS_TOKEN=\S+/m.test(readFileSync(t(`${ETC}/relay.env`), 'utf8'));
  // the service itself starts once its secret is there (else the person is told how, below)
  const willHaveSecrets = secretsReady() || (role === 'agent' && opts.tokenFile !== undefined);
  for (const u of boot.filter((b) => b !== main || willHaveSecrets)) {
    system(
      `start ${u} now: systemctl restart ${u}`,
      () => unitsChanged || !isState('is-active', u, 'active'),
      () => exec('systemctl', ['restart', u]),
    );
  }

  // ---- what is left to the person ---------------------------------------------------------------
  if (role === 'agent') {
    if (!secretsReady()) {
      todo.push(
        `put the kiosk's token (printed by \`qrkiosk relay kiosk add\` on the relay) in ${ETC}/token, then start the agent:\n` +
          `      sudo sh -c 'umask 277; cat > ${ETC}/token' && sudo chown ${SERVICE_USER} ${ETC}/token && sudo systemctl start qrkiosk-agent`,
      );
    }
    todo.push(`edit ${ETC}/agent.yaml: kioskId, relay.url, slots${opts.profile ? '' : ', hardware (e.g. `profile: gpio-spiral-4`)'}; check it with \`qrkiosk config check ${ETC}/agent.yaml\``);
    todo.push(`let your login use the technician commands without sudo: sudo usermod -aG ${SERVICE_USER} "$USER" (then log in again)`);
    todo.push('for the Chromium kiosk screen (display.driver: web): docs/display.md, then sudo systemctl enable --now qrkiosk-display');
  } else {
    if (!secretsReady()) todo.push(`put your Mercado Pago access token in ${ETC}/relay.env (QRKIOSK_MP_ACCESS_TOKEN=APP_USR-...), then: sudo systemctl start qrkiosk-relay`);
    todo.push(`edit ${ETC}/relay.yaml (publicUrl, collectorId, catalog); check it with \`qrkiosk config check ${ETC}/relay.yaml\``);
    todo.push('put a TLS proxy (nginx, caddy) in front of port 8080, WebSocket upgrades included (docs/install.md)');
  }
  if (!real) todo.unshift(`--root ${root}: useradd/usermod/udevadm/systemctl were printed, not run`);
  return { manifest, steps, todo };
}

/** Runs (or, with dryRun, only describes) every step that is needed. */
export function runInstall(opts: InstallOptions): InstallReport {
  if (opts.root === '/' && !opts.dryRun && typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new InstallError('install writes to /etc and /opt: run it with sudo (or try --dry-run, or --root DIR)');
  }
  const { manifest, steps, todo } = planInstall(opts);
  const report: StepReport[] = [];
  let changed = 0;
  for (const s of steps) {
    if (!s.needed()) {
      report.push({ what: s.what, outcome: 'already' });
      continue;
    }
    if (opts.dryRun) {
      report.push({ what: s.what, outcome: 'would' });
      continue;
    }
    if (s.kind === 'system' && opts.root !== '/') {
      report.push({ what: s.what, outcome: 'skipped' });
      continue;
    }
    try {
      s.apply();
    } catch (err) {
      throw new InstallError(`${s.what}: failed: ${(err as Error).message}`);
    }
    changed++;
    report.push({ what: s.what, outcome: 'done' });
  }
  return { role: opts.role, root: opts.root, dryRun: opts.dryRun, version: manifest.version, steps: report, changed, todo };
}

