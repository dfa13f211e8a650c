// The one capped exponential backoff of the project: attempt 1 waits `baseMs`, each further attempt
// doubles it, never more than `capMs`. With `random` (a [0,1) source) it is "full jitter": uniform
// in [0, that ceiling], which spreads a fleet of retries instead of having them stampede.

export function backoffDelay(attempt: number, baseMs: number, capMs: number, random?: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return random ? Math.floor(random() * ceiling) : ceiling;
}
