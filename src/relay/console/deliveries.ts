import { randomUUID } from 'node:crypto';
import type { DeliveryRecord, DeliveryStore, NewDelivery } from '../store/index.js';
import { backoffDelay } from '../../runtime/backoff.js';
import type { Logger } from '../../runtime/log.js';
import { quietUntil, type Channel } from './channels.js';
import { WorkLoop, type WorkLoopOptions } from '../work-loop.js';

export type { DeliveryRecord, DeliveryStore, NewDelivery };

// Delivers what the relay owes the outside world, from the deliveries table: each row is tried
// until its channel takes it, with a capped backoff between tries, held through the channel's
// quiet hours, and given up (visible in the console, retryable by an operator) after
// `maxAttempts` or a permanent refusal. The row is written in the same transaction as the fact it
// reports (alert fired, order paid), so nothing is sent that did not happen and nothing that
// happened is lost; a crash mid-send repeats that send, which receivers de-duplicate by the
// X-Qrkiosk-Delivery id.

/** The rows for one event: one per channel that wants it. */
export function deliveriesFor(channels: readonly Channel[], event: string, subject: string, data: Record<string, unknown>, at: number): NewDelivery[] {
  const out: NewDelivery[] = [];
  for (const ch of channels) {
    if (!ch.wants(event)) continue;
    const id = randomUUID();
    out.push({ id, channel: ch.name, event, subject, payload: JSON.stringify({ id, type: event, createdAt: new Date(at).toISOString(), data }) });
  }
  return out;
}

export interface DeliveryWorkerOptions {
  store: DeliveryStore;
  channels: readonly Channel[];
  logger: Logger;
  now?: () => number;
  maxAttempts?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  batch?: number;
  /** several relay instances: one pass at a time across them (relay/fleet/job-lock.ts) */
  exclusive?: WorkLoopOptions['exclusive'];
}

/**
 * The delivery loop is the relay's one work-loop shape (relay/work-loop.ts): kicks, one pass at a
 * time, an optional job lock across instances. Its retry times live in the rows (next_at), not in
 * memory, so after each pass it sleeps until the earliest one.
 */
export class DeliveryWorker extends WorkLoop {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private readonly byName: Map<string, Channel>;

  constructor(private readonly o: DeliveryWorkerOptions) {
    // the in-memory backoff of WorkLoop is unused here: a failed row carries its own next_at
    super({ logger: o.logger, name: 'deliveries', baseBackoffMs: 1000, maxBackoffMs: 60_000, ...(o.exclusive ? { exclusive: o.exclusive } : {}) });
    this.now = o.now ?? Date.now;
    this.byName = new Map(o.channels.map((c) => [c.name, c]));
  }

  override async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await super.close();
    for (const c of this.o.channels) c.close();
  }

  protected async pass(): Promise<void> {
    for (;;) {
      const due = await this.o.store.dueDeliveries(this.now(), this.o.batch ?? 50);
      if (due.length === 0 || this.closed) break;
      await Promise.all(due.map((d) => this.deliver(d)));
    }
    await this.arm();
  }

  /** Sleeps until the next row is due (a retry, the end of quiet hours). */
  private async arm(): Promise<void> {
    if (this.closed) return;
    const next = await this.o.store.nextDeliveryAt().catch(() => undefined);
    if (this.timer) clearTimeout(this.timer);
    if (next === undefined) return;
    // a timer longer than ~24.8 days overflows; quiet hours and backoffs are far shorter anyway
    const wait = Math.min(Math.max(0, next - this.now()), 3_600_000);
    this.timer = setTimeout(() => this.kick(), wait);
    this.timer.unref();
  }

  private async deliver(d: DeliveryRecord): Promise<void> {
    const at = this.now();
    const ch = this.byName.get(d.channel);
    if (!ch) {
      // the channel was removed from the config: say so on the row; an operator may re-add it and retry
      if (d.state === 'held') await this.o.store.moveDelivery(d.id, 'release', at, { nextAt: at });
      await this.o.store.moveDelivery(d.id, 'give_up', at, { error: `channel "${d.channel}" is not in the relay's config any more` });
      return;
    }
    if (d.state === 'held') {
      d = await this.o.store.moveDelivery(d.id, 'release', at, { nextAt: at });
    }
    const quiet = quietUntil(ch.quietHours, at);
    if (quiet !== undefined) {
      await this.o.store.moveDelivery(d.id, 'hold', at, { nextAt: quiet });
      return;
    }
    const result = await ch.send({ deliveryId: d.id, event: d.event, payload: d.payload }, at);
    const done = this.now();
    const attempts = d.attempts + 1;
    if (result.ok) {
      await this.o.store.moveDelivery(d.id, 'delivered', done, { attempts, error: null });
      this.o.logger.info({ deliveryId: d.id, channel: d.channel, event: d.event, attempts }, `delivered ${d.event} to ${d.channel}`);
      return;
    }
    const max = this.o.maxAttempts ?? 12;
    if (result.permanent || attempts >= max) {
      await this.o.store.moveDelivery(d.id, 'give_up', done, { attempts, error: result.error });
      this.o.logger.error({ deliveryId: d.id, channel: d.channel, event: d.event, attempts, error: result.error }, `gave up delivering ${d.event} to ${d.channel}: ${result.error}`);
      return;
    }
    const delay = backoffDelay(attempts, this.o.baseBackoffMs ?? 5_000, this.o.maxBackoffMs ?? 3_600_000);
    await this.o.store.moveDelivery(d.id, 'failed', done, { attempts, error: result.error, nextAt: done + delay });
    this.o.logger.warn({ deliveryId: d.id, channel: d.channel, attempts, delayMs: delay }, `delivering ${d.event} to ${d.channel} failed (${result.error}); retrying in ${Math.round(delay / 1000)} s`);
  }
}
