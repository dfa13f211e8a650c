// Reachability of one dependency (the store, Mercado Pago) from the outcome of real work: when
// it last answered, when it last failed, and since when every attempt has failed. "Down" starts
// at the first failure after a success and ends at the next success; a dependency nobody has
// called yet is not down. Ages use the real clock, not the relay's business clock.

export interface DependencySnapshot {
  /** not failing now (no failure since the last success) */
  ok: boolean;
  /** seconds since the last success; null when it never answered */
  lastSuccessAgeSeconds: number | null;
  /** seconds since the last failure; null when it never failed */
  lastFailureAgeSeconds: number | null;
  /** seconds every attempt has been failing; 0 when ok */
  downForSeconds: number;
  /** the last failure's reason while down */
  error: string | null;
}

export class DependencyTracker {
  private lastSuccessAt: number | undefined;
  private lastFailureAt: number | undefined;
  private downSince: number | undefined;
  private lastError: string | null = null;

  constructor(private readonly clock: () => number = Date.now) {}

  success(): void {
    this.lastSuccessAt = this.clock();
    this.downSince = undefined;
    this.lastError = null;
  }

  failure(reason: string): void {
    const at = this.clock();
    this.lastFailureAt = at;
    this.downSince ??= at;
    this.lastError = reason.slice(0, 300);
  }

  /** failing right now (the latest attempt failed) */
  get failing(): boolean {
    return this.downSince !== undefined;
  }

  downForMs(): number {
    return this.downSince === undefined ? 0 : this.clock() - this.downSince;
  }

  snapshot(): DependencySnapshot {
    const now = this.clock();
    const age = (t: number | undefined) => (t === undefined ? null : Math.max(0, (now - t) / 1000));
    return {
      ok: this.downSince === undefined,
      lastSuccessAgeSeconds: age(this.lastSuccessAt),
      lastFailureAgeSeconds: age(this.lastFailureAt),
      downForSeconds: this.downForMs() / 1000,
      error: this.lastError,
    };
  }
}
