import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { Logger } from '../runtime/log.js';
import { errorFrame, frame, parseRelayFrame } from '../protocol/codec.js';
import {
  isReliable,
  type AgentMessage,
  type CommandFrame,
  type OrderAccepted,
  type OrderExpired,
  type OrderPaid,
  type OrderRefunded,
  type OrderRejected,
  type RelayMessage,
  type Welcome,
} from '../protocol/messages.js';
import type { Journal } from './journal.js';

// The kiosk's one connection to the relay. It never gives up: a kiosk on a flaky 4G modem must
// come back by itself. Reliable frames live in the journal's outbox until the relay acks them and
// are re-sent, in order, after every welcome; reliable frames from the relay are applied at most
// once (inbox) and acked only after they are durable.

export type ReliableRelayMessage = OrderAccepted | OrderRejected | OrderPaid | OrderExpired | OrderRefunded;

export type LinkState = 'idle' | 'connecting' | 'open' | 'online' | 'offline' | 'closed';

export interface RelayLinkOptions {
  url: string;
  token: string;
  kioskId: string;
  agentVersion: string;
  backoff: { baseMs: number; capMs: number };
  pingIntervalSeconds: number;
  journal: Journal;
  logger: Logger;
  /** orders the agent still has open, for hello */
  openOrders: () => Array<{ orderId: string; state: string }>;
  /**
   * Applies one reliable relay frame. Runs INSIDE the journal transaction that also records the
   * frame id in the inbox, so "applied" and "seen" commit together. May return work to run after
   * the commit and before the ack, e.g. moving the motor (whose `dispensing` commit also flushes
   * the deferred `paid` one: see onReliable).
   */
  apply: (msg: ReliableRelayMessage) => (() => void) | void;
  /**
   * A signed operator command (src/agent/remote-commands.ts checks and applies it, and acks it
   * itself once it is journaled). Without a handler, commands are logged and ignored.
   */
  onCommand?: (msg: CommandFrame) => void;
  /** a link that stayed up this long resets the backoff (default 30 s) */
  stableAfterMs?: number;
  /** for tests of the jitter */
  random?: () => number;
}

/**
 * Full-jitter exponential backoff: a uniformly random delay in [0, min(cap, base * 2^attempt)).
 * Spreading reconnects over the whole range keeps a fleet of kiosks from stampeding a relay that
 * just restarted.
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

export function backoffCeiling(attempt: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
}

export class RelayLink extends EventEmitter {
  private ws: WebSocket | undefined;
  private _state: LinkState = 'idle';
  private attempt = 0;
  private stopping = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  /** when the oldest unanswered ping went out */
  private pingOutstandingSince: number | undefined;
  /** outbox ids already written to the current socket (re-sent only after a reconnect) */
  private sentOnSocket = new Set<string>();
  private _welcome: Welcome | undefined;
  private _lastWelcomeAt: number | undefined;
  private _connectedSince: number | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: RelayLinkOptions) {
    super();
    this.log = opts.logger.child({ part: 'relay-link' });
  }

  get state(): LinkState {
    return this._state;
  }

  /** connected AND welcomed: the relay knows this kiosk and its catalog is current */
  get online(): boolean {
    return this._state === 'online';
  }

  get welcome(): Welcome | undefined {
    return this._welcome;
  }

  get lastWelcomeAt(): number | undefined {
    return this._lastWelcomeAt;
  }

  get connectedSince(): number | undefined {
    return this._connectedSince;
  }

  start(): void {
    if (this.stopping || this.ws) return;
    this.connect();
  }

  private setState(s: LinkState): void {
    if (this._state === s) return;
    const was = this._state;
    this._state = s;
    this.emit('state', s);
    if (s === 'online') this.emit('online');
    if (was === 'online') this.emit('offline');
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    this.setState('connecting');
    const ws = new WebSocket(this.opts.url, {
      headers: { Authorization: `Bearer ${this.opts.token}` },
      // a black-holed TCP connect (modem up, no route) must not hang the loop forever
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
    this.ws = ws;
    let refusedStatus: number | undefined;

    ws.on('unexpected-response', (_req, res) => {
      refusedStatus = res.statusCode;
      if (res.statusCode === 401 || res.statusCode === 403) {
        this.log.error(
          { status: res.statusCode, url: this.opts.url },
          'relay refused the kiosk token: run `qrkiosk relay kiosk add` and put the token in relay.token',
        );
      } else {
        this.log.warn({ status: res.statusCode, url: this.opts.url }, `relay answered HTTP ${res.statusCode} instead of a WebSocket upgrade`);
      }
      res.resume();
      ws.terminate();
    });

    ws.on('open', () => {
      this._connectedSince = Date.now();
      this.sentOnSocket = new Set();
      this.setState('open');
      this.log.info({ url: this.opts.url }, 'connected to relay');
      this.stableTimer = setTimeout(() => {
        // the link proved itself: the next drop starts the backoff from the beginning again
        this.attempt = 0;
        this.emit('stable');
      }, this.opts.stableAfterMs ?? 30_000);
      this.startPings();
      this.sendNow(
        frame({
          type: 'hello' as const,
          kioskId: this.opts.kioskId,
          agentVersion: this.opts.agentVersion,
          openOrders: this.opts.openOrders(),
        }),
      );
    });

    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.log.warn('relay sent a binary frame; only JSON text frames are spoken');
        this.sendNow(errorFrame('malformed', 'binary frames are not supported; send JSON text'));
        return;
      }
      this.onText(Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8'));
    });

    ws.on('error', (err) => {
      // 'close' always follows; reconnecting happens there. Refusals were already logged.
      if (refusedStatus === undefined) this.log.warn({ err: err.message, url: this.opts.url }, 'relay connection error');
    });

    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.ws = undefined;
      this.stopTimers();
      this._connectedSince = undefined;
      if (this.stopping) {
        this.setState('closed');
        return;
      }
      if (this._state === 'open' || this._state === 'online') {
        this.log.warn({ code, reason: reason.toString() }, 'relay connection closed');
      }
      this.setState('offline');
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    const delayMs = backoffDelay(this.attempt, this.opts.backoff.baseMs, this.opts.backoff.capMs, this.opts.random);
    const attempt = this.attempt;
    this.attempt++;
    this.emit('reconnect', { attempt, delayMs, ceilingMs: backoffCeiling(attempt, this.opts.backoff.baseMs, this.opts.backoff.capMs) });
    this.log.debug({ attempt, delayMs }, 'reconnecting to relay');
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
  }

  private startPings(): void {
    const intervalMs = this.opts.pingIntervalSeconds * 1000;
    this.pingOutstandingSince = undefined;
    this.pingTimer = setInterval(() => {
      const now = Date.now();
      if (this.pingOutstandingSince !== undefined && now - this.pingOutstandingSince >= 2 * intervalMs) {
        // a half-open TCP link (NAT timeout, modem reset) looks open forever: only silence tells
        this.log.warn({ silentMs: now - this.pingOutstandingSince }, 'relay did not answer ping: dropping the link');
        this.ws?.terminate();
        return;
      }
      this.pingOutstandingSince ??= now;
      this.sendNow(frame({ type: 'ping' as const, at: now }));
    }, intervalMs);
  }

  private stopTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.pingTimer = undefined;
    this.stableTimer = undefined;
    this.pingOutstandingSince = undefined;
  }

  /**
   * Sends a frame that is not kept in the outbox (a status snapshot, an ack, a refusal): written
   * now if the link is open, else dropped. Returns whether it was written.
   */
  sendUnreliable(f: AgentMessage): boolean {
    return this.sendNow(f);
  }

  /**
   * A signed price or catalog command changed this kiosk's prices: the welcome in hand sells at
   * them from now on (the relay's next welcome carries them too).
   */
  adoptCatalog(catalog: Welcome['catalog']): void {
    if (this._welcome) this._welcome = { ...this._welcome, catalog };
  }

  /** Writes a frame to the current socket if there is one (unreliable frames, acks, pongs). */
  private sendNow(f: AgentMessage | ReturnType<typeof errorFrame>): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(f), (err) => {
      if (err) this.log.debug({ err: err.message, type: f.type }, 'send failed (link dropping)');
    });
    return true;
  }

  /**
   * Sends the outbox rows not yet written to this connection, in journal order. Called after each
   * welcome and whenever the session queued something. Rows stay in the journal until acked.
   */
  flush(): void {
    if (!this.online) return;
    for (const row of this.opts.journal.outbox()) {
      if (this.sentOnSocket.has(row.id)) continue;
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(row.payload);
      this.sentOnSocket.add(row.id);
    }
  }

  private onText(raw: string): void {
    const parsed = parseRelayFrame(raw);
    if (!parsed.ok) {
      this.log.warn({ code: parsed.code, refId: parsed.refId }, `relay frame refused: ${parsed.message}`);
      this.sendNow(errorFrame(parsed.code, parsed.message, parsed.refId));
      return;
    }
    const msg = parsed.msg;
    try {
      this.handle(msg);
    } catch (err) {
      // A bug in handling one frame must not take the kiosk down; the relay re-sends unacked frames.
      this.log.error({ err, type: msg.type, id: msg.id }, 'failed to handle relay frame');
      this.sendNow(errorFrame('internal', `agent could not apply ${msg.type}: ${(err as Error).message}`, msg.id));
    }
  }

  private handle(msg: RelayMessage): void {
    switch (msg.type) {
      case 'welcome':
        return this.onWelcome(msg);
      case 'ping':
        this.sendNow(frame({ type: 'pong' as const, at: msg.at }));
        return;
      case 'pong':
        this.pingOutstandingSince = undefined;
        return;
      case 'ack':
        if (this.opts.journal.ack(msg.ackId)) this.emit('acked', msg.ackId);
        return;
      case 'error':
        this.log.warn({ code: msg.code, refId: msg.refId }, `relay reported an error: ${msg.message}`);
        return;
      case 'command':
        if (this.opts.onCommand) this.opts.onCommand(msg);
        else this.log.warn({ id: msg.id }, 'relay sent a command; this agent has no command handler');
        return;
      default:
        if (isReliable(msg.type)) return this.onReliable(msg);
        // exhaustive today; a future relay type that is neither is ignored loudly
        this.log.warn({ type: (msg as { type: string }).type }, 'ignoring relay frame');
    }
  }

  private onWelcome(w: Welcome): void {
    if (w.kioskId !== this.opts.kioskId) {
      this.log.warn({ expected: this.opts.kioskId, got: w.kioskId }, 'relay welcomed a different kiosk id: check kioskId and the token');
    }
    const at = Date.now();
    this._welcome = w;
    this._lastWelcomeAt = at;
    this.opts.journal.saveWelcome(w, at);
    this.log.info({ products: w.catalog.length, paymentModel: w.paymentModel }, 'relay welcomed the kiosk');
    // everything unacked goes again, in order, on this new connection
    this.sentOnSocket = new Set();
    this.setState('online');
    this.emit('welcome', w);
    this.flush();
  }

  private onReliable(msg: ReliableRelayMessage): void {
    const journal = this.opts.journal;
    if (journal.inboxHas(msg.id)) {
      // our ack got lost: the effect is already applied; flushed (a no-op unless it was deferred
      // a moment ago), then said again
      journal.flush();
      this.sendAck(msg.id);
      return;
    }
    // `order.paid` is committed without its own fsync: the motor work below starts with the
    // synced `dispensing` commit, which flushes both, before the ack goes out. A process killed
    // in between still finds `paid` (the WAL is in the OS cache) and dispenses on restart; a
    // power cut in between loses it unacked, and the relay sends order.paid again.
    const after = journal.tx(
      () => {
        const a = this.opts.apply(msg);
        journal.markInbox(msg.id, msg.type);
        return a;
      },
      { flush: msg.type === 'order.paid' ? 'deferred' : 'now' },
    );
    if (after) after();
    // nothing is acked before it is on disk (a no-op when the motor work flushed it)
    journal.flush();
    this.sendAck(msg.id);
    // the apply may have queued frames (vend.result for a late payment...)
    this.flush();
  }

  private sendAck(id: string): void {
    this.sendNow(frame({ type: 'ack' as const, ackId: id }));
  }

  /** Stops reconnecting and closes the socket. */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopTimers();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) {
      this.setState('closed');
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1001, 'agent shutting down');
    });
    this.setState('closed');
  }
}
