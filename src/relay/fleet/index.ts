import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../../runtime/log.js';
import { LocalJobLocks, PgJobLocks, type JobLocks } from './job-lock.js';
import { FleetPresence, type PresenceStore } from './presence.js';
import type { RelayStore } from '../store/index.js';
import { LocalSignals, PgSignals, type KioskSignals } from './signals.js';

// One relay instance among several (or alone): what it needs to cooperate with the others
// through the shared store. The hub (kiosk WebSockets) tells the fleet who connected here; the
// fleet tells the hub when a kiosk held here has new outbox rows written by another instance, and
// when a kiosk held here moved to another instance (drop the stale link). Background jobs take a
// job lock so one instance runs each pass.

/** What the fleet needs from the kiosk hub of this instance. */
export interface FleetHub {
  /** kiosks with a live link on this instance */
  onlineKiosks(): string[];
  /** writes the kiosk's unsent outbox rows if it is connected here (no-op otherwise) */
  flush(kioskId: string): void | Promise<void>;
  /** closes this instance's link to the kiosk (it is now held elsewhere, or its token was revoked) */
  drop(kioskId: string, reason: string): void;
  on(event: 'online' | 'offline', listener: (kioskId: string) => void): unknown;
}

export interface FleetOptions {
  store: PresenceStore & Pick<RelayStore, 'kiosksWithOutbox'>;
  logger: Logger;
  /** PostgreSQL url when the store is shared; undefined for a single SQLite instance */
  pgUrl?: string;
  /** the store's pool, for job locks (PostgreSQL only) */
  pgPool?: pg.Pool;
  instanceId?: string;
  heartbeatMs?: number;
  staleAfterMs?: number;
  /** how often every local kiosk's outbox is swept, in case a signal was lost */
  sweepMs?: number;
}

/** Unique per process: two relays on one host (or a restart) never share presence rows. */
export function newInstanceId(name = hostname()): string {
  return `${name}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export class Fleet {
  readonly instanceId: string;
  private sweepTimer: NodeJS.Timeout | undefined;
  private hub: FleetHub | undefined;
  /** presence writes and signals in flight (close waits for them) */
  private readonly inFlight = new Set<Promise<unknown>>();
  private ownPool: pg.Pool | undefined;

  private constructor(
    private readonly o: FleetOptions,
    readonly signals: KioskSignals,
    readonly presence: FleetPresence,
    readonly jobs: JobLocks,
    instanceId: string,
  ) {
    this.instanceId = instanceId;
  }

  static async start(o: FleetOptions): Promise<Fleet> {
    const instanceId = o.instanceId ?? newInstanceId();
    const signals: KioskSignals = o.pgUrl ? await PgSignals.start({ url: o.pgUrl, logger: o.logger }) : new LocalSignals();
    // job locks hold a connection for a whole pass: their own small pool, never the store's
    const lockPool = o.pgPool ?? (o.pgUrl ? new pg.Pool({ connectionString: o.pgUrl, max: 4, application_name: 'qrkiosk-relay-jobs' }) : undefined);
    lockPool?.on('error', (err) => o.logger.warn({ err }, `job lock connection lost: ${err.message}`));
    const jobs: JobLocks = lockPool ? new PgJobLocks(lockPool) : new LocalJobLocks();
    const heartbeatMs = o.heartbeatMs ?? 5_000;
    let fleet: Fleet | undefined;
    const presence = new FleetPresence({
      store: o.store,
      instanceId,
      logger: o.logger,
      heartbeatMs,
      staleAfterMs: o.staleAfterMs ?? 3 * heartbeatMs,
      onMovedAway: (kioskId, to) => fleet?.hub?.drop(kioskId, `the kiosk reconnected to relay instance ${to}`),
    });
    fleet = new Fleet(o, signals, presence, jobs, instanceId);
    if (lockPool && !o.pgPool) fleet.ownPool = lockPool;
    await presence.start();
    return fleet;
  }

  /** Connects the fleet to this instance's hub. */
  attach(hub: FleetHub): void {
    this.hub = hub;
    hub.on('online', (kioskId) => {
      this.track(
        this.presence
          .connected(kioskId)
          .then(() => this.signals.send({ kind: 'presence', kioskId }))
          .catch((err: Error) => this.o.logger.warn({ err, kioskId }, `could not record kiosk ${kioskId} as connected here: ${err.message}`)),
      );
    });
    hub.on('offline', (kioskId) => {
      this.track(
        this.presence
          .disconnected(kioskId)
          .then(() => this.signals.send({ kind: 'presence', kioskId }))
          .catch((err: Error) => this.o.logger.warn({ err, kioskId }, `could not record kiosk ${kioskId} as gone: ${err.message}`)),
      );
    });
    this.signals.on('signal', (s) => {
      if (s.kind === 'outbox') void this.flush(s.kioskId);
      else if (s.kind === 'presence') void this.presence.refresh(s.kioskId).catch(() => {});
      else if (s.kind === 'revoked') hub.drop(s.kioskId, 'the kiosk token was revoked');
    });
    this.signals.on('resync', () => void this.sweep());
    const every = this.o.sweepMs ?? 2_000;
    this.sweepTimer = setInterval(() => void this.sweep(), every);
    this.sweepTimer.unref();
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Is the kiosk connected to any live instance (this one included)? */
  isPresent(kioskId: string): boolean {
    return this.presence.isPresent(kioskId);
  }

  /** Pushes every local kiosk that has outbox rows (a lost signal costs at most one sweep period). */
  async sweep(): Promise<void> {
    const hub = this.hub;
    if (!hub) return;
    let waiting: string[];
    try {
      waiting = await this.o.store.kiosksWithOutbox();
    } catch (err) {
      this.o.logger.warn({ err }, `outbox sweep failed: ${(err as Error).message}`);
      return;
    }
    const local = new Set(hub.onlineKiosks());
    for (const id of waiting) if (local.has(id)) await this.flush(id);
  }

  private async flush(kioskId: string): Promise<void> {
    try {
      await this.hub?.flush(kioskId);
    } catch (err) {
      this.o.logger.warn({ err, kioskId }, `could not push kiosk ${kioskId}'s outbox: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.presence.stop();
    const hub = this.hub;
    // kiosks held here are gone with us: free their presence so the others see them offline now
    if (hub) for (const id of hub.onlineKiosks()) await this.presence.disconnected(id).catch(() => {});
    await Promise.allSettled([...this.inFlight]);
    await this.signals.close();
    await this.jobs.close();
    await this.ownPool?.end().catch(() => {});
  }
}
