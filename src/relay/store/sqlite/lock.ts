// One holder at a time, first come first served. The SQLite store has one connection: while a
// transaction is open on it, any other statement would join that transaction (or read its
// uncommitted rows), so every caller waits for its turn here (see ./index.ts).

export class AsyncLock {
  private held = false;
  private readonly waiters: Array<() => void> = [];

  /** Nobody holds it and nobody waits: a synchronous step may run at once, without taking it. */
  get free(): boolean {
    return !this.held && this.waiters.length === 0;
  }

  acquire(): Promise<void> {
    if (this.free) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Hands the lock to the next waiter (it stays held) or frees it. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.held = false;
  }
}
