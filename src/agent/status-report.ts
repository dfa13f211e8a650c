import { frame } from '../protocol/codec.js';
import { CONSOLE_FEATURE, type AgentMessage, type KioskStatus, type Welcome } from '../protocol/messages.js';
import type { Logger } from '../runtime/log.js';

// The kiosk's status snapshot for the operator's console (kiosk.status). A snapshot replaces the
// previous one at the relay, so it is not queued: after a lost link the next welcome brings a fresh
// one, and nothing piles up while offline. A burst of changes (a vend moves state, screen and stock
// within milliseconds) becomes one frame, and a snapshot identical to the last one sent on this
// connection (a countdown tick redrawing the pay screen) is not sent at all.

export type StatusBody = Omit<KioskStatus, 'v' | 'id' | 'type' | 'at'>;

/** What fits comfortably in one frame (the relay's cap is 64 KiB). */
const MAX_STATUS_BYTES = 48 * 1024;

export interface StatusReporterDeps {
  link: { readonly online: boolean; readonly welcome: Welcome | undefined; sendUnreliable(f: AgentMessage): boolean };
  snapshot(): StatusBody;
  logger: Logger;
  /** how long changes are gathered into one snapshot (default 200 ms) */
  coalesceMs?: number;
  now?: () => number;
}

/** Shrinks a snapshot that would not fit one frame: recent faults go first, then the tail of the slot lists. */
export function fitStatus(body: StatusBody, maxBytes = MAX_STATUS_BYTES): StatusBody {
  const size = (b: StatusBody) => Buffer.byteLength(JSON.stringify(b));
  if (size(body) <= maxBytes) return body;
  let b: StatusBody = { ...body, faults: { active: body.faults.active, recent: [] }, truncated: true };
  while (size(b) > maxBytes && (b.stock.length > 0 || b.prices.length > 0 || b.faults.active.length > 0)) {
    b = {
      ...b,
      stock: b.stock.slice(0, Math.floor(b.stock.length * 0.8)),
      prices: b.prices.slice(0, Math.floor(b.prices.length * 0.8)),
      faults: { active: b.faults.active.slice(0, Math.floor(b.faults.active.length * 0.8)), recent: [] },
    };
  }
  return b;
}

export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  /** the last snapshot written on the current connection (reset by every welcome) */
  private lastSent: string | undefined;
  private closed = false;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly deps: StatusReporterDeps) {
    this.log = deps.logger.child({ part: 'status' });
    this.now = deps.now ?? Date.now;
  }

  /** Something the console shows may have changed: a snapshot goes out shortly. */
  poke(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => this.send(), this.deps.coalesceMs ?? 200);
    this.timer.unref();
  }

  /** A (re)welcome: the relay may have lost what we sent before, so the next snapshot goes whatever it says. */
  onWelcome(): void {
    this.lastSent = undefined;
    this.poke();
  }

  private send(): void {
    this.timer = undefined;
    const { link } = this.deps;
    // an older relay answers unknown frames with an error: it gets none
    if (this.closed || !link.online || !link.welcome?.features?.includes(CONSOLE_FEATURE)) return;
    let body: StatusBody;
    try {
      body = fitStatus(this.deps.snapshot());
    } catch (err) {
      this.log.error({ err }, `could not take the status snapshot: ${(err as Error).message}`);
      return;
    }
    const key = JSON.stringify(body);
    if (key === this.lastSent) return;
    if (link.sendUnreliable(frame({ type: 'kiosk.status' as const, at: this.now(), ...body }))) {
      this.lastSent = key;
      this.log.debug({ screen: body.screen, state: body.state, faults: body.faults.active.length }, 'status sent to the relay');
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
