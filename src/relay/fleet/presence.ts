import type { Logger } from '../../runtime/log.js';
import type { PresenceRow, PresenceStore } from '../store/index.js';

// Which relay instance holds each kiosk's WebSocket, kept in the store so that every instance can
// answer "is this kiosk connected?" (the liveness gate: an order is offered to a paying customer
// only while its kiosk can be told to dispense). Each instance refreshes `seen_at` of its own rows
// on a timer; a row older than `staleAfterMs` belongs to an instance that died, so the kiosk counts
// as offline until it reconnects somewhere.
//
// The POS poll asks on every request and must not wait for the database, so this keeps a cache:
// loaded in full on a timer, and one kiosk at a time when a `presence` signal says it changed.

export type { PresenceRow, PresenceStore };

export interface PresenceOptions {
  store: PresenceStore;
  instanceId: string;
  logger: Logger;
  /** how often this instance refreshes its rows and reloads the others' */
  heartbeatMs: number;
  /** a row not refreshed for this long is a dead instance's */
  staleAfterMs: number;
  now?: () => number;
  /** a kiosk of ours is now held by another instance: drop our (older) link */
  onMovedAway?: (kioskId: string, to: string) => void;
}

export class FleetPresence {
  private readonly rows = new Map<string, PresenceRow>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private beating: Promise<void> | undefined;

  constructor(private readonly opts: PresenceOptions) {
    this.now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.opts.heartbeatMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Is the kiosk connected to any live instance (per the last reload)? */
  isPresent(kioskId: string): boolean {
    const r = this.rows.get(kioskId);
    return !!r && this.now() - r.seenAt <= this.opts.staleAfterMs;
  }

  /** The live instance that holds the kiosk, if any. */
  holderOf(kioskId: string): string | undefined {
    return this.isPresent(kioskId) ? this.rows.get(kioskId)!.instanceId : undefined;
  }

  async connected(kioskId: string): Promise<void> {
    const at = this.now();
    await this.opts.store.claimPresence(kioskId, this.opts.instanceId, at);
    this.rows.set(kioskId, { kioskId, instanceId: this.opts.instanceId, connectedAt: at, seenAt: at });
  }

  async disconnected(kioskId: string): Promise<void> {
    // off the cache at once: the liveness gate must not offer for a kiosk whose link just closed
    if (this.rows.get(kioskId)?.instanceId === this.opts.instanceId) this.rows.delete(kioskId);
    await this.opts.store.releasePresence(kioskId, this.opts.instanceId);
  }

  /** A `presence` signal: reload one kiosk's row. */
  async refresh(kioskId: string): Promise<void> {
    const r = await this.opts.store.presenceOf(kioskId);
    this.apply(kioskId, r);
  }

  /** One heartbeat: refresh our rows, reload everyone's. Overlapping calls share one run. */
  beat(): Promise<void> {
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    const at = this.now();
    try {
      await this.opts.store.touchPresence(this.opts.instanceId, at);
      const live = await this.opts.store.presentSince(at - this.opts.staleAfterMs);
      const seen = new Set<string>();
      for (const r of live) {
        seen.add(r.kioskId);
        this.apply(r.kioskId, r);
      }
      for (const id of [...this.rows.keys()]) if (!seen.has(id)) this.rows.delete(id);
    } catch (err) {
      // The cache keeps its last rows; they go stale by themselves if the store stays away.
      this.opts.logger.warn({ err }, `presence heartbeat failed: ${(err as Error).message}`);
    }
  }

  private apply(kioskId: string, r: PresenceRow | undefined): void {
    const before = this.rows.get(kioskId);
    if (!r) {
      this.rows.delete(kioskId);
      return;
    }
    this.rows.set(kioskId, r);
    if (before?.instanceId === this.opts.instanceId && r.instanceId !== this.opts.instanceId) {
      this.opts.onMovedAway?.(kioskId, r.instanceId);
    }
  }
}
