// Rate limiting, one mechanism for every use: a token bucket (a steady rate with a burst on top),
// a table of buckets keyed by source with a bounded size, and a pacer that makes callers wait
// for their turn instead of refusing them (calls we make to Mercado Pago). Time comes from a
// monotonic clock so a wall-clock jump never opens or shuts the gates; tests pass their own.

export type MonoClock = () => number;

const monotonic: MonoClock = () => performance.now();

export interface BucketSpec {
  /** tokens added per second (the sustained rate) */
  perSecond: number;
  /** the most tokens the bucket holds (how big a burst passes at once) */
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly spec: BucketSpec,
    private readonly clock: MonoClock = monotonic,
  ) {
    if (!(spec.perSecond > 0) || !(spec.burst >= 1)) throw new RangeError(`a rate needs perSecond > 0 and burst >= 1, not ${JSON.stringify(spec)}`);
    this.tokens = spec.burst;
    this.last = clock();
  }

  private refill(): void {
    const now = this.clock();
    this.tokens = Math.min(this.spec.burst, this.tokens + ((now - this.last) / 1000) * this.spec.perSecond);
    this.last = now;
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token will be there (0 when one is there now). */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.spec.perSecond) * 1000);
  }

  /** True when the bucket is full again: nothing is remembered about its user. */
  get idle(): boolean {
    this.refill();
    return this.tokens >= this.spec.burst;
  }
}

/**
 * One bucket per key (a client address). Full buckets are forgotten, and the table never holds
 * more than `maxKeys`: beyond that, new keys share one overflow bucket, so a flood from many
 * addresses costs bounded memory and is limited as a whole.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly overflow: TokenBucket;

  constructor(
    readonly spec: BucketSpec,
    private readonly maxKeys = 10_000,
    private readonly clock: MonoClock = monotonic,
  ) {
    this.overflow = new TokenBucket(spec, clock);
  }

  tryTake(key: string): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.sweep();
      if (this.buckets.size >= this.maxKeys) return this.overflow.tryTake();
      b = new TokenBucket(this.spec, this.clock);
      this.buckets.set(key, b);
    }
    return b.tryTake();
  }

  /** Seconds a refused client should wait (Retry-After). */
  retryAfterSeconds(key: string): number {
    const b = this.buckets.get(key) ?? this.overflow;
    return Math.max(1, Math.ceil(b.waitMs() / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(): void {
    for (const [k, b] of this.buckets) if (b.idle) this.buckets.delete(k);
  }
}

/**
 * Makes callers take turns at a fixed rate: `await pacer.turn()` resolves when the caller may
 * make its call. Callers are served in order; `close()` releases every waiter at once.
 */
export class Pacer {
  private readonly bucket: TokenBucket;
  private readonly queue: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(spec: BucketSpec, clock: MonoClock = monotonic) {
    this.bucket = new TokenBucket(spec, clock);
  }

  turn(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.queue.length === 0 && this.bucket.tryTake()) return Promise.resolve();
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.schedule();
    });
  }

  /** callers waiting for their turn */
  get waiting(): number {
    return this.queue.length;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const r of this.queue.splice(0)) r();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      while (this.queue.length > 0 && this.bucket.tryTake()) this.queue.shift()!();
      if (this.queue.length > 0) this.schedule();
    }, Math.max(1, this.bucket.waitMs()));
    this.timer.unref();
  }
}
