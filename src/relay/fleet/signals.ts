import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from '../../runtime/log.js';
import { backoffDelay } from '../../runtime/backoff.js';

// How relay instances tell each other "look at the store for kiosk K". The store is the truth (an
// outbox row, a presence row); a signal only says where to look, so a lost signal costs latency,
// never a message: every instance also sweeps its own kiosks' outboxes on a timer and after the
// listening connection comes back.
//
// With one instance (SQLite) the signals stay in the process. With PostgreSQL they are NOTIFYs on
// one channel, sent by the store INSIDE the transaction that wrote the row, so PostgreSQL delivers
// them only if and when that transaction commits (never for a rolled-back one, never before the
// row is visible to the instance that reads it).

export const SIGNAL_CHANNEL = 'qrkiosk_kiosk';

/** What changed for a kiosk: its outbox got a row, or its presence (connected somewhere) changed. */
export type SignalKind = 'outbox' | 'presence' | 'revoked';

export interface KioskSignal {
  kind: SignalKind;
  kioskId: string;
}

export interface SignalEvents {
  signal: [KioskSignal];
  /** the listening connection was (re)established: signals may have been missed, sweep everything */
  resync: [];
}

export interface KioskSignals extends EventEmitter<SignalEvents> {
  /** Sends a signal outside any transaction (the store sends its own inside its transactions). */
  send(signal: KioskSignal): Promise<void>;
  close(): Promise<void>;
}

/** The payload of one NOTIFY: `kind:kioskId` (kiosk ids never contain a colon-free ambiguity: kind is first). */
export function encodeSignal(s: KioskSignal): string {
  return `${s.kind}:${s.kioskId}`;
}

export function decodeSignal(payload: string): KioskSignal | undefined {
  const i = payload.indexOf(':');
  if (i <= 0) return undefined;
  const kind = payload.slice(0, i);
  const kioskId = payload.slice(i + 1);
  if ((kind !== 'outbox' && kind !== 'presence' && kind !== 'revoked') || kioskId === '') return undefined;
  return { kind, kioskId };
}

/** One relay on its own: signals are events in this process. */
export class LocalSignals extends EventEmitter<SignalEvents> implements KioskSignals {
  async send(signal: KioskSignal): Promise<void> {
    this.emit('signal', signal);
  }
  async close(): Promise<void> {
    this.removeAllListeners();
  }
}

export interface PgSignalsOptions {
  url: string;
  logger: Logger;
  /** first reconnect delay; doubles to `reconnectCapMs` */
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  /** shown in pg_stat_activity; defaults to qrkiosk-relay-signals */
  applicationName?: string;
}

/**
 * LISTENs on a dedicated connection (a pooled one would lose its LISTEN when returned). If that
 * connection drops, it reconnects with backoff and emits `resync`, because NOTIFYs sent while it
 * was away are gone.
 */
export class PgSignals extends EventEmitter<SignalEvents> implements KioskSignals {
  private client: pg.Client | undefined;
  private closed = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly baseMs: number;
  private readonly capMs: number;

  private constructor(private readonly opts: PgSignalsOptions) {
    super();
    this.baseMs = opts.reconnectBaseMs ?? 250;
    this.capMs = opts.reconnectCapMs ?? 10_000;
  }

  /** Resolves once the first LISTEN is in place, so no signal sent after it is missed. */
  static async start(opts: PgSignalsOptions): Promise<PgSignals> {
    const s = new PgSignals(opts);
    await s.connect();
    return s;
  }

  /** true while the LISTEN connection is up (for /healthz) */
  get listening(): boolean {
    return this.client !== undefined;
  }

  async send(signal: KioskSignal): Promise<void> {
    if (this.closed) return;
    const c = new pg.Client({ connectionString: this.opts.url });
    // A one-off connection: signals outside transactions are rare (presence on connect/close).
    // Its failures reach the caller through the query; a connection ended by the server while
    // idle (a restart, the database dropped) must not become an uncaught 'error' event.
    c.on('error', () => {});
    await c.connect();
    try {
      await c.query('SELECT pg_notify($1, $2)', [SIGNAL_CHANNEL, encodeSignal(signal)]);
    } finally {
      await c.end();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = undefined;
    if (c) await c.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const c = new pg.Client({ connectionString: this.opts.url, application_name: this.opts.applicationName ?? 'qrkiosk-relay-signals' });
    c.on('notification', (n) => {
      if (n.channel !== SIGNAL_CHANNEL || n.payload === undefined) return;
      const s = decodeSignal(n.payload);
      if (s) this.emit('signal', s);
    });
    c.on('error', (err) => this.lost(c, err));
    c.on('end', () => this.lost(c, new Error('connection ended')));
    await c.connect();
    await c.query(`LISTEN ${SIGNAL_CHANNEL}`);
    if (this.closed) {
      await c.end().catch(() => {});
      return;
    }
    this.client = c;
    this.attempt = 0;
  }

  private lost(c: pg.Client, err: Error): void {
    if (this.client !== c || this.closed) return;
    this.client = undefined;
    c.end().catch(() => {});
    this.opts.logger.warn({ err }, `lost the PostgreSQL signal connection (${err.message}); reconnecting`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => {
          if (!this.closed) {
            this.opts.logger.info('PostgreSQL signal connection back; sweeping every kiosk');
            this.emit('resync');
          }
        },
        (err: Error) => {
          this.opts.logger.warn({ err }, `PostgreSQL signal connection still down: ${err.message}`);
          this.scheduleReconnect();
        },
      );
    }, backoffDelay(this.attempt, this.baseMs, this.capMs));
    this.retryTimer.unref();
  }
}
