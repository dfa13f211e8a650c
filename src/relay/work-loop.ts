import { backoffDelay } from '../runtime/backoff.js';
import type { Logger } from '../runtime/log.js';

// The relay's background workers (refunds, making orders payable at Mercado Pago) share one shape:
// the work list lives in the database, a kick runs a pass now (or right after the one in progress),
// and a unit of work that fails is retried after a capped exponential backoff while the others go
// on. This is that shape, once.

export interface WorkLoopOptions {
  logger: Logger;
  /** what a failed pass is called in the log, e.g. "refund" */
  name: string;
  baseBackoffMs: number;
  maxBackoffMs: number;
  /**
   * Several relay instances: a pass runs only while it holds this job's lock (relay/fleet/
   * job-lock.ts). When another instance holds it, this one tries again shortly, since the
   * holder may have read its work list before this instance's new work was committed.
   */
  exclusive?: (job: string, fn: () => Promise<void>) => Promise<{ ran: boolean }>;
}

const BUSY_RETRY_MS = 500;

export abstract class WorkLoop {
  private running: Promise<void> | undefined;
  private again = false;
  protected closed = false;
  private readonly retry = new Map<string, { attempts: number; notBefore: number; timer: NodeJS.Timeout }>();

  constructor(private readonly loop: WorkLoopOptions) {}

  /** One pass over the work list; called again while kicks came in during it. */
  protected abstract pass(): Promise<void>;

  /** Something may need doing: run a pass now (or right after the one in progress). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.passes()
      .catch((err: unknown) => {
        // e.g. the database closed under us during shutdown; never an unhandled rejection
        if (!this.closed) this.loop.logger.error({ err }, `${this.loop.name} pass failed: ${(err as Error).message}`);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.retry.values()) clearTimeout(r.timer);
    this.retry.clear();
    // Never wait for a Mercado Pago call that may hang: the work is on disk, a restart resumes it.
    await Promise.race([this.running, new Promise((r) => setTimeout(r, 200).unref())]);
  }

  private async passes(): Promise<void> {
    const run = async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.closed);
    };
    if (!this.loop.exclusive) return run();
    const r = await this.loop.exclusive(this.loop.name, run);
    if (!r.ran && !this.closed) setTimeout(() => this.kick(), BUSY_RETRY_MS).unref();
  }

  /** Whether `key` failed recently and waits for its retry. */
  protected backingOff(key: string): boolean {
    const r = this.retry.get(key);
    return !!r && r.notBefore > Date.now();
  }

  /** `key` worked: forget its failures. */
  protected succeeded(key: string): void {
    const r = this.retry.get(key);
    if (r) clearTimeout(r.timer);
    this.retry.delete(key);
  }

  /** `key` failed in a way worth repeating: a pass runs again after its backoff. */
  protected failed(key: string, what: string, err: Error): void {
    const prev = this.retry.get(key);
    if (prev) clearTimeout(prev.timer);
    const attempts = (prev?.attempts ?? 0) + 1;
    // Mercado Pago outages last minutes; hammering it does not help.
    const delay = backoffDelay(attempts, this.loop.baseBackoffMs, this.loop.maxBackoffMs);
    // The timer makes the key due itself: a timer may fire a little before Date.now() reaches
    // notBefore, and a pass that still found it backing off would leave it waiting for ever.
    const entry = { attempts, notBefore: Date.now() + delay, timer: undefined as unknown as NodeJS.Timeout };
    entry.timer = setTimeout(() => {
      entry.notBefore = 0;
      this.kick();
    }, delay);
    entry.timer.unref();
    this.retry.set(key, entry);
    this.loop.logger.warn({ err, key, attempts, delayMs: delay }, `${what} failed (${err.message}); retrying in ${delay} ms`);
  }

  /** Runs one unit of work unless it is backing off; a throw schedules its retry. */
  protected async attempt(key: string, what: string, fn: () => Promise<void>): Promise<void> {
    if (this.backingOff(key)) return;
    try {
      await fn();
      this.succeeded(key);
    } catch (err) {
      if (this.closed) return;
      this.failed(key, what, err as Error);
    }
  }
}
