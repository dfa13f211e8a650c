// Mercado Pago answered "not found" for a resource: remember it for a while, so a flood of
// notifications naming resources that are not ours (or do not exist) costs one API call per id
// per period instead of one per notification. Bounded: past `maxEntries` the oldest are dropped
// (insertion order), which only means one more call for them.

export class NotFoundMemory {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly maxEntries = 50_000,
  ) {}

  remember(key: string): void {
    this.seen.delete(key);
    this.seen.set(key, this.now() + this.ttlMs);
    if (this.seen.size > this.maxEntries) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  /** Still known not to exist? */
  has(key: string): boolean {
    const until = this.seen.get(key);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.seen.delete(key);
    return false;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }

  get size(): number {
    return this.seen.size;
  }
}
