import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus } from '../agent/agent.js';
import { loadAgentConfig } from '../agent/config.js';
import { ControlUnavailable, controlRequest, openControlStream, type ControlStreamClient } from '../agent/control.js';
import { CURRENT, ETC, PREFIX, RELEASES, UNIT_DIR, incompatibility, onTarget, readManifest, releaseDirName } from './layout.js';

// `qrkiosk update <tarball|version>`: releases sit side by side under /opt/qrkiosk/releases and
// `current` names the one that runs. An update takes the agent's vend lock (no update while a
// customer's vend is open), switches the link, restarts, and keeps the new release only if it
// reports READY and completes a relay round trip (hello -> welcome) before the deadline. Otherwise
// it switches the link back, restarts the previous release and says why. The journal's schema
// only moves forward by steps the previous release still reads (src/agent/journal-schema.ts), so
// the rolled-back agent opens the journal the new one wrote.

export interface UpdateOptions {
  /** a release tarball (…tar.gz) or the version of a release already under releases/ */
  source: string;
  root: string;
  /** how long the new release has to come up and reach the relay */
  deadlineMs: number;
  /** how long to wait for an open vend before giving up (a pay screen lasts a couple of minutes) */
  vendWaitMs?: number;
  log: (line: string) => void;
  /** runs systemctl (and tar); a stand-in on PATH in tests, as systemd is not running there */
  exec?: (cmd: string, args: string[]) => { code: number; out: string };
}

export type UpdateOutcome =
  | { result: 'updated'; from: string; to: string }
  | { result: 'already'; version: string }
  | { result: 'rolled_back'; from: string; to: string; reason: string; rollbackOk: boolean };

export class UpdateError extends Error {
  override name = 'UpdateError';
}

const AGENT_UNIT = 'qrkiosk-agent.service';
const RELAY_UNIT = 'qrkiosk-relay.service';
const POLL_MS = 250;

function defaultExec(cmd: string, args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; message: string };
    return { code: e.status ?? 1, out: e.stdout ?? e.message };
  }
}

function linkTarget(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces the link in one rename: at every instant `current` names a whole release. */
function switchLink(path: string, target: string): void {
  const tmp = `${path}.next`;
  try {
    unlinkSync(tmp);
  } catch {
    /* none left over */
  }
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

/** Only one update at a time: a lock file with the updater's pid (a dead updater's lock is taken over). */
function takeUpdateLock(path: string): () => void {
  mkdirSync(join(path, '..'), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8'));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = Number.isInteger(pid) && pid > 0;
      } catch {
        alive = false;
      }
      if (alive) throw new UpdateError(`another update (pid ${pid}) is running: wait for it to finish`);
      rmSync(path, { force: true });
    }
  }
  throw new UpdateError(`cannot take the update lock ${path}`);
}

/** The release to switch to, unpacked beside the others when it comes as a tarball. */
function prepareRelease(o: UpdateOptions, exec: NonNullable<UpdateOptions['exec']>): string {
  const releases = onTarget(o.root, RELEASES);
  if (!/\.(tar\.gz|tgz)$/.test(o.source)) {
    const version = releaseDirName(o.source);
    const dir = join(releases, version);
    if (!existsSync(join(dir, 'release.json'))) {
      const have = existsSync(releases) ? readdirSync(releases).filter((d) => !d.startsWith('.')) : [];
      throw new UpdateError(`there is no release ${version} in ${RELEASES} (there: ${have.join(', ') || 'none'}): give the release tarball instead`);
    }
    return version;
  }
  if (!existsSync(o.source)) throw new UpdateError(`no file ${o.source}`);
  const unpack = join(releases, `.unpack-${randomBytes(4).toString('hex')}`);
  mkdirSync(unpack, { recursive: true });
  try {
    const tar = exec('tar', ['-xzf', o.source, '-C', unpack]);
    if (tar.code !== 0) throw new UpdateError(`cannot unpack ${o.source}: ${tar.out.trim()}`);
    const top = readdirSync(unpack);
    if (top.length !== 1) throw new UpdateError(`${o.source} is not a qrkiosk release (expected one folder inside, found ${top.length})`);
    const dir = join(unpack, top[0]!);
    const m = readManifest(dir);
    const bad = incompatibility(m);
    if (bad) throw new UpdateError(bad);
    const version = releaseDirName(m.version);
    const dest = join(releases, version);
    if (existsSync(dest)) {
      if (readFileSync(join(dest, 'release.json'), 'utf8') !== readFileSync(join(dir, 'release.json'), 'utf8')) {
        throw new UpdateError(`${RELEASES}/${version} exists and is another build of ${version}: remove it first if you mean to replace it`);
      }
      o.log(`release ${version} is already unpacked in ${RELEASES}/${version}`);
    } else {
      renameSync(dir, dest);
      o.log(`unpacked release ${version} into ${RELEASES}/${version}`);
    }
    return version;
  } finally {
    rmSync(unpack, { recursive: true, force: true });
  }
}

interface Health {
  ok: boolean;
  why: string;
}

/** READY (systemd active, the agent answering as `version`) and a relay round trip since it started. */
async function agentHealth(o: UpdateOptions, exec: NonNullable<UpdateOptions['exec']>, socket: string, version: string, since: number): Promise<Health> {
  const unit = exec('systemctl', ['is-active', AGENT_UNIT]).out.trim() || 'unknown';
  let status: AgentStatus | undefined;
  try {
    status = (await controlRequest(socket, 'status', {}, { timeoutMs: 2000 })) as AgentStatus;
  } catch {
    status = undefined;
  }
  const ready = unit === 'active' && status !== undefined && status.agentVersion === version && status.startedAt >= since;
  if (!ready) {
    const answer = status ? `answers as ${status.agentVersion}, started ${new Date(status.startedAt).toISOString()}` : 'no answer';
    return { ok: false, why: `release ${version} did not report READY (systemd: ${unit}; control socket: ${answer})` };
  }
  const roundTrip = status!.relay.online && (status!.relay.lastWelcomeAt ?? 0) >= status!.startedAt;
  if (!roundTrip) return { ok: false, why: `release ${version} is READY but made no relay round trip (relay link: ${status!.relay.state}, ${status!.relay.url})` };
  return { ok: true, why: '' };
}

async function relayHealth(exec: NonNullable<UpdateOptions['exec']>, version: string): Promise<Health> {
  const unit = exec('systemctl', ['is-active', RELAY_UNIT]).out.trim() || 'unknown';
  return unit === 'active' ? { ok: true, why: '' } : { ok: false, why: `release ${version} of the relay did not report READY (systemd: ${unit})` };
}

async function waitHealthy(check: () => Promise<Health>, deadlineMs: number): Promise<Health> {
  const end = Date.now() + deadlineMs;
  let last: Health = { ok: false, why: 'not checked' };
  for (;;) {
    last = await check();
    if (last.ok || Date.now() >= end) return last;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export async function runUpdate(o: UpdateOptions): Promise<UpdateOutcome> {
  const exec = o.exec ?? defaultExec;
  const t = (p: string) => onTarget(o.root, p);
  const previousLink = linkTarget(t(CURRENT));
  if (!previousLink) throw new UpdateError(`${CURRENT} is missing: this machine has no installed release; install one with sudo qrkiosk install agent|relay`);
  const previous = previousLink.replace(/^releases\//, '');
  const releaseLock = takeUpdateLock(t(`${PREFIX}/.update.lock`));
  let hold: ControlStreamClient | undefined;
  try {
    const version = prepareRelease(o, exec);
    if (version === previous) {
      o.log(`release ${version} is already the current one: nothing to do`);
      return { result: 'already', version };
    }
    const agent = existsSync(t(`${UNIT_DIR}/${AGENT_UNIT}`));
    const relay = existsSync(t(`${UNIT_DIR}/${RELAY_UNIT}`));
    if (!agent && !relay) throw new UpdateError(`neither ${AGENT_UNIT} nor ${RELAY_UNIT} is installed in ${UNIT_DIR}: run sudo qrkiosk install agent|relay first`);
    const socket = agent ? loadAgentConfig(t(`${ETC}/agent.yaml`), { readToken: false }).control.socket : '';

    // 1. the vend lock: no restart while a customer's vend is open
    if (agent) {
      try {
        const st = (await controlRequest(socket, 'status', {}, { timeoutMs: 5000 })) as AgentStatus;
        if (st.order) o.log(`waiting for order ${st.order.orderId} (${st.order.state}) to finish before updating; no new sales meanwhile`);
        hold = await openControlStream(socket, 'update.hold', {}, () => {}, { timeoutMs: o.vendWaitMs ?? 10 * 60_000 });
        o.log('vend lock taken: no vend is open');
      } catch (err) {
        if (!(err instanceof ControlUnavailable)) throw new UpdateError(`cannot take the agent's vend lock: ${(err as Error).message}`);
        o.log('the agent is not running: no vend to wait for');
      }
    }

    // 2. switch, restart, judge
    const check = async (v: string, since: number): Promise<Health> => {
      const results = [...(agent ? [await agentHealth(o, exec, socket, v, since)] : []), ...(relay ? [await relayHealth(exec, v)] : [])];
      return results.find((r) => !r.ok) ?? { ok: true, why: '' };
    };
    const restart = (to: string): number => {
      switchLink(t(CURRENT), `releases/${to}`);
      const since = Date.now();
      for (const unit of [...(agent ? [AGENT_UNIT] : []), ...(relay ? [RELAY_UNIT] : [])]) {
        // --no-block: a start that never sends READY would hold `systemctl restart` for the whole
        // TimeoutStartSec; the deadline here is what decides
        const r = exec('systemctl', ['restart', '--no-block', unit]);
        if (r.code !== 0) o.log(`systemctl restart ${unit}: ${r.out.trim() || `exit ${r.code}`}`);
      }
      return since;
    };
    o.log(`switching ${CURRENT} from ${previous} to ${version} and restarting`);
    const since = restart(version);
    hold?.close(); // the agent it was held from has stopped
    hold = undefined;
    const health = await waitHealthy(() => check(version, since), o.deadlineMs);
    if (health.ok) {
      o.log(`release ${version} is running: READY and a relay round trip; ${previous} stays in ${RELEASES} (qrkiosk update ${previous} goes back)`);
      return { result: 'updated', from: previous, to: version };
    }

    // 3. back to what worked
    const seconds = Math.round(o.deadlineMs / 1000);
    const reason = `${health.why} within ${seconds} s`;
    o.log(`${reason}: switching back to ${previous}`);
    const backSince = restart(previous);
    const back = await waitHealthy(() => check(previous, backSince), Math.max(o.deadlineMs, 60_000));
    o.log(back.ok ? `rolled back: ${previous} is running again` : `ROLLBACK DID NOT COME UP: ${back.why}; look at journalctl -u qrkiosk-agent`);
    return { result: 'rolled_back', from: previous, to: version, reason, rollbackOk: back.ok };
  } finally {
    hold?.close();
    releaseLock();
  }
}
