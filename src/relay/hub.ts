import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import type { Logger } from '../runtime/log.js';
import type { RefusalLog } from '../runtime/refusal-log.js';
import { errorFrame, frame, parseAgentFrame } from '../protocol/codec.js';
import { isReliable } from '../protocol/messages.js';
import type { AgentMessage, DexAuditFrame, Hello, OrderCancel, OrderReady, VendResolve, VendResult, Welcome } from '../protocol/messages.js';
import { hashToken, type Kiosk, type RelayStore } from './store/index.js';
import type { ConsoleAgentMessage, ConsoleFrames } from './kiosk-console.js';

// The kiosk link: one WebSocket per kiosk at /v1/kiosk, authenticated at the HTTP upgrade with the
// kiosk's bearer token (only its sha256 is stored). Reliable frames are applied at most once via
// the inbox table, in the same transaction as the state change they cause, and acked afterwards;
// our own reliable frames live in the outbox table until the kiosk acks them, so a reconnect (or a
// relay restart) re-sends exactly what the kiosk has not confirmed.

export const KIOSK_WS_PATH = '/v1/kiosk';
const MAX_FRAME_BYTES = 64 * 1024;

export type ReliableAgentMessage = OrderReady | OrderCancel | VendResult | VendResolve;

export interface HubHandler {
  /**
   * Applies a reliable frame INSIDE the inbox transaction: every write goes through `tx`. If it
   * throws, nothing (state, outbox, inbox) is committed and the frame is not acked, so the agent
   * re-sends it later. Resolves what to run once the transaction has committed (push the outbox
   * rows it created, wake workers).
   */
  applyReliable(tx: RelayStore, kioskId: string, msg: ReliableAgentMessage): Promise<() => void>;
  onHello?(kioskId: string, hello: Hello): Promise<void>;
}

export type WelcomeBody = Omit<Welcome, 'v' | 'id' | 'type'>;

export interface HubOptions {
  store: RelayStore;
  logger: Logger;
  pingIntervalMs: number;
  welcomeFor(kiosk: Kiosk): WelcomeBody;
  /** business clock (inbox applied_at); liveness uses the real clock */
  now?: () => number;
  /** refused connections are logged through it, aggregated per source (relay/limits.ts) */
  refusals?: RefusalLog;
}

interface Link {
  kioskId: string;
  /** the sha256 of the token it connected with: a rotated or revoked token ends the link */
  tokenHash: string;
  ws: WebSocket;
  remote: string;
  helloDone: boolean;
  lastSeen: number;
  /** outbox ids already written on THIS socket; a new socket starts empty, hence a full re-send */
  sent: Set<string>;
  /** the frames of this socket are handled one after the other, in the order they came */
  queue: Promise<void>;
}

export interface KioskHubEvents {
  online: [kioskId: string];
  offline: [kioskId: string];
}

export class KioskHub extends EventEmitter<KioskHubEvents> {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private readonly links = new Map<string, Link>();
  private handler: HubHandler | undefined;
  /** the console's kiosk frames (src/relay/kiosk-console.ts) */
  private console: ConsoleFrames | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: HubOptions) {
    super();
    this.now = opts.now ?? Date.now;
  }

  setHandler(handler: HubHandler): void {
    this.handler = handler;
  }

  setConsole(frames: ConsoleFrames): void {
    this.console = frames;
  }

  /** Writes one frame to a kiosk's live socket (a signed command); false when it has none. */
  sendTo(kioskId: string, body: object): boolean {
    const link = this.links.get(kioskId);
    if (!link?.helloDone || link.ws.readyState !== WebSocket.OPEN) return false;
    this.send(link, body);
    return true;
  }

  /** Hooks the upgrade event of the HTTP server fastify listens with. */
  attach(server: Server): void {
    server.on('upgrade', this.onUpgrade);
    this.pingTimer = setInterval(() => this.heartbeat(), this.opts.pingIntervalMs);
    this.pingTimer.unref();
  }

  /** A kiosk is online once its authenticated socket is open and it said hello. */
  isOnline(kioskId: string): boolean {
    const link = this.links.get(kioskId);
    return !!link && link.helloDone && link.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends a connected kiosk a fresh welcome (its catalog, QR and model changed): the agent takes a
   * welcome at any time, so a change reaches the screen without a reconnect. A kiosk that is not
   * connected gets the new one when it says hello. Returns whether it was sent.
   */
  async rewelcome(kioskId: string): Promise<boolean> {
    const link = this.links.get(kioskId);
    if (!link?.helloDone) return false;
    const kiosk = await this.opts.store.getKiosk(kioskId);
    if (!kiosk || this.links.get(kioskId) !== link) return false;
    this.send(link, frame({ type: 'welcome' as const, ...this.opts.welcomeFor(kiosk) }));
    return true;
  }

  /**
   * Closes this relay's link to the kiosk: it reconnected to another relay instance (this socket
   * is a stale half-open one), or its token was revoked. The kiosk's agent reconnects by itself.
   */
  drop(kioskId: string, reason: string): void {
    const link = this.links.get(kioskId);
    if (!link) return;
    this.opts.logger.info({ kioskId, reason }, `kiosk ${kioskId}: dropping its link here: ${reason}`);
    link.ws.close(4000, reason.slice(0, 100));
  }

  /** Ids of the kiosks that said hello on a live link. */
  onlineKiosks(): string[] {
    return [...this.links.keys()].filter((id) => this.isOnline(id));
  }

  onlineCount(): number {
    let n = 0;
    for (const id of this.links.keys()) if (this.isOnline(id)) n++;
    return n;
  }

  /**
   * Writes the kiosk's unsent outbox rows, in order. No-op when it is not connected. Never
   * rejects: a row it could not read stays in the outbox for the next flush or reconnect.
   */
  async flush(kioskId: string): Promise<void> {
    const link = this.links.get(kioskId);
    if (!link || !link.helloDone || link.ws.readyState !== WebSocket.OPEN) return;
    let rows;
    try {
      rows = await this.opts.store.outboxOf(kioskId);
    } catch (err) {
      if (!this.closed) this.opts.logger.error({ err, kioskId }, `kiosk ${kioskId}: could not read its outbox: ${(err as Error).message}`);
      return;
    }
    // Synchronous from here: of two flushes racing, each row goes out once, in outbox order.
    if (this.links.get(kioskId) !== link || link.ws.readyState !== WebSocket.OPEN) return;
    for (const row of rows) {
      if (link.sent.has(row.messageId)) continue;
      link.sent.add(row.messageId);
      link.ws.send(row.payload);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    const closing = [...this.links.values()].map(
      (link) =>
        new Promise<void>((resolve) => {
          if (link.ws.readyState === WebSocket.CLOSED) return resolve();
          // A kiosk that does not answer the close handshake must not hold the shutdown.
          const t = setTimeout(() => link.ws.terminate(), 1000);
          link.ws.once('close', () => {
            clearTimeout(t);
            resolve();
          });
          link.ws.close(1001, 'relay shutting down');
        }),
    );
    await Promise.all(closing);
    this.links.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---- connection set-up ------------------------------------------------------------------------

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => {}); // a peer resetting mid-handshake is not our crash
    const remote = req.socket.remoteAddress ?? 'unknown';
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://relay').pathname;
    } catch {
      path = '';
    }
    if (this.closed || path !== KIOSK_WS_PATH) {
      refuseUpgrade(socket, this.closed ? 503 : 404, this.closed ? 'Service Unavailable' : 'Not Found');
      return;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) {
      this.refuse(remote, 'no kiosk token', `kiosk connection from ${remote} refused: no bearer token`);
      refuseUpgrade(socket, 401, 'Unauthorized');
      return;
    }
    const hash = hashToken(m[1]!);
    void this.opts.store.getKioskByTokenHash(hash).then(
      (kiosk) => this.upgradeKiosk(req, socket, head, remote, hash, kiosk),
      (err: unknown) => {
        this.opts.logger.error({ err, remote }, `kiosk connection from ${remote}: could not look up its token: ${(err as Error).message}`);
        refuseUpgrade(socket, 503, 'Service Unavailable');
      },
    );
  };

  private upgradeKiosk(req: IncomingMessage, socket: Duplex, head: Buffer, remote: string, hash: string, kiosk: Kiosk | undefined): void {
    if (socket.destroyed) return;
    if (this.closed) {
      refuseUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    if (!kiosk) {
      // Log only a prefix of the hash: enough to correlate, useless to replay.
      this.refuse(remote, 'unknown kiosk token', `kiosk connection from ${remote} refused: unknown token (sha256 ${hash.slice(0, 8)}…)`, { tokenHash: hash.slice(0, 8) });
      refuseUpgrade(socket, 401, 'Unauthorized');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, kiosk, remote, hash));
  }

  private refuse(remote: string, reason: string, message: string, fields: Record<string, unknown> = {}): void {
    if (this.opts.refusals) this.opts.refusals.note(remote, reason, message, fields);
    else this.opts.logger.warn({ remote, ...fields }, message);
  }

  /**
   * Ends the kiosk's link when the token it connected with no longer names it (rotated or revoked
   * through `qrkiosk relay kiosk rotate-token|revoke`, by any process): resolves whether it did.
   */
  async dropIfTokenRevoked(kioskId: string): Promise<boolean> {
    const link = this.links.get(kioskId);
    if (!link) return false;
    const owner = await this.opts.store.getKioskByTokenHash(link.tokenHash);
    if (owner?.id === kioskId || this.links.get(kioskId) !== link) return false;
    this.opts.logger.warn({ kioskId, remote: link.remote }, `kiosk ${kioskId}: its token was rotated or revoked: disconnected`);
    link.ws.close(4001, 'token revoked');
    // a peer that does not answer the close is cut (a revoked token must not keep a live link)
    setTimeout(() => link.ws.terminate(), 1000).unref();
    return true;
  }

  private onConnection(ws: WebSocket, kiosk: Kiosk, remote: string, tokenHash: string): void {
    const link: Link = { kioskId: kiosk.id, tokenHash, ws, remote, helloDone: false, lastSeen: Date.now(), sent: new Set(), queue: Promise.resolve() };
    const previous = this.links.get(kiosk.id);
    this.links.set(kiosk.id, link);
    if (previous) {
      // A kiosk that rebooted may reconnect before the old TCP connection times out: the newest
      // connection is the real one, and two sockets would double-deliver the outbox.
      this.opts.logger.info({ kioskId: kiosk.id, remote }, `kiosk ${kiosk.id}: newer connection replaces the older one`);
      previous.ws.close(4000, 'replaced by a newer connection');
    }
    this.opts.logger.info({ kioskId: kiosk.id, remote }, `kiosk ${kiosk.id} connected from ${remote}`);

    ws.on('message', (data, isBinary) => {
      link.lastSeen = Date.now();
      // A heartbeat is answered at once: it changes nothing, and an agent must not think the link
      // dead because a frame before it waits for the store.
      if (this.answerPing(link, data, isBinary)) return;
      // One frame at a time per kiosk, as the agent sent them: a cancel is never overtaken by the
      // order.ready after it while the first one waits for the store.
      link.queue = link.queue
        .then(() => this.onMessage(link, data, isBinary))
        .catch((err: unknown) => {
          // Last line of defence: a bug handling one frame must not take the process down.
          this.opts.logger.error({ err, kioskId: link.kioskId }, `kiosk ${link.kioskId}: frame handling failed`);
          this.send(link, errorFrame('internal', 'the relay could not handle that frame'));
        });
    });
    ws.on('pong', () => {
      link.lastSeen = Date.now();
    });
    ws.on('error', (err) => {
      this.opts.logger.warn({ err, kioskId: link.kioskId }, `kiosk ${link.kioskId}: socket error: ${err.message}`);
    });
    ws.on('close', (code) => {
      const wasOnline = link.helloDone;
      if (this.links.get(link.kioskId) === link) this.links.delete(link.kioskId);
      this.opts.logger.info({ kioskId: link.kioskId, code }, `kiosk ${link.kioskId} disconnected (${code})`);
      if (wasOnline && !this.links.has(link.kioskId)) this.emit('offline', link.kioskId);
    });
  }

  // ---- frames -----------------------------------------------------------------------------------

  /** Answers a JSON `ping` frame now; false for any other frame (handled in order by onMessage). */
  private answerPing(link: Link, data: RawData, isBinary: boolean): boolean {
    if (isBinary || this.links.get(link.kioskId) !== link) return false;
    const raw = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    // cheap test first: only a frame that says it is a ping is parsed here
    if (!raw.includes('"ping"')) return false;
    const parsed = parseAgentFrame(raw);
    if (!parsed.ok || parsed.msg.type !== 'ping') return false;
    // Echo the agent's timestamp so it can measure the round trip.
    this.send(link, frame({ type: 'pong' as const, at: parsed.msg.at }));
    return true;
  }

  private async onMessage(link: Link, data: RawData, isBinary: boolean): Promise<void> {
    if (this.links.get(link.kioskId) !== link) return; // a replaced socket has no say any more
    if (isBinary) {
      this.refuseFrame(link, 'malformed', 'binary frames are not part of the protocol: send JSON text');
      return;
    }
    const raw = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const parsed = parseAgentFrame(raw);
    if (!parsed.ok) {
      this.refuseFrame(link, parsed.code, parsed.message, parsed.refId);
      return;
    }
    const msg: AgentMessage = parsed.msg;
    switch (msg.type) {
      case 'hello':
        await this.onHello(link, msg);
        return;
      case 'ack':
        if (await this.opts.store.deleteOutbox(link.kioskId, msg.ackId)) link.sent.delete(msg.ackId);
        else if (this.console?.onAck(link.kioskId, msg.ackId)) return;
        else this.opts.logger.debug({ kioskId: link.kioskId, ackId: msg.ackId }, 'ack for an unknown or already acked message');
        return;
      case 'ping':
        // Echo the agent's timestamp so it can measure the round trip.
        this.send(link, frame({ type: 'pong' as const, at: msg.at }));
        return;
      case 'pong':
        return;
      case 'error':
        this.opts.logger.warn(
          { kioskId: link.kioskId, code: msg.code, refId: msg.refId },
          `kiosk ${link.kioskId} reported an error: ${msg.code}: ${msg.message}`,
        );
        return;
      case 'order.ready':
      case 'order.cancel':
      case 'vend.result':
      case 'vend.resolve':
      case 'dex.audit':
        await this.applyReliable(link, msg);
        return;
      case 'kiosk.status':
      case 'stock.refill':
      case 'command.result':
      case 'command.refused':
        await this.onConsoleFrame(link, msg);
        return;
    }
  }

  /** Console frames are kept by the console's recorder (idempotent per id), acked once it has them. */
  private async onConsoleFrame(link: Link, msg: ConsoleAgentMessage): Promise<void> {
    const reliable = isReliable(msg.type);
    if (!this.console) {
      if (reliable) this.send(link, errorFrame('internal', 'relay is starting; try again', msg.id));
      return;
    }
    // awaited: the link's frames are handled in the order they came (see ws.on('message'))
    await this.console.onFrame(link.kioskId, msg).then(
      () => {
        if (reliable) this.send(link, frame({ type: 'ack' as const, ackId: msg.id }));
      },
      (err: unknown) => {
        // NOT acked: the agent keeps it in its outbox and sends it again
        this.opts.logger.error({ err, kioskId: link.kioskId, msgId: msg.id }, `kiosk ${link.kioskId}: could not record ${msg.type}: ${(err as Error).message}`);
        if (reliable) this.send(link, errorFrame('internal', `could not record ${msg.type}; it will be retried`, msg.id));
      },
    );
  }

  private async onHello(link: Link, msg: Hello): Promise<void> {
    if (msg.kioskId !== link.kioskId) {
      // The token decides who the kiosk is; a hello naming another kiosk is a misconfigured agent.
      this.opts.logger.warn(
        { kioskId: link.kioskId, claimed: msg.kioskId },
        `kiosk ${link.kioskId} said hello as "${msg.kioskId}": closing; fix the agent's kioskId or token`,
      );
      this.send(link, errorFrame('unauthorized', `this token belongs to kiosk ${link.kioskId}, not ${msg.kioskId}`, msg.id));
      link.ws.close(1008, 'kiosk id does not match token');
      return;
    }
    const kiosk = await this.opts.store.getKiosk(link.kioskId);
    if (!kiosk) {
      link.ws.close(1008, 'kiosk removed');
      return;
    }
    const wasOnline = link.helloDone;
    link.helloDone = true;
    link.sent.clear(); // a (re-)hello means the agent wants the whole outbox again
    this.send(link, frame({ type: 'welcome' as const, ...this.opts.welcomeFor(kiosk) }));
    try {
      await this.handler?.onHello?.(link.kioskId, msg);
    } catch (err) {
      this.opts.logger.error({ err, kioskId: link.kioskId }, 'hello reconciliation failed');
    }
    await this.flush(link.kioskId);
    if (!wasOnline) this.emit('online', link.kioskId);
  }

  private async applyReliable(link: Link, msg: ReliableAgentMessage | DexAuditFrame): Promise<void> {
    const store = this.opts.store;
    const handler = this.handler;
    if (!handler) {
      this.send(link, errorFrame('internal', 'relay is starting; try again', msg.id));
      return;
    }
    let duplicate = false;
    let afterCommit: (() => void) | undefined;
    try {
      await store.transaction(async (tx) => {
        if (await tx.inInbox(link.kioskId, msg.id)) {
          duplicate = true;
          return;
        }
        // a machine audit is a record to keep, not an order step: stored here, once
        if (msg.type === 'dex.audit') await tx.insertDexAudit(link.kioskId, msg, this.now());
        else afterCommit = await handler.applyReliable(tx, link.kioskId, msg);
        await tx.recordInbox(link.kioskId, msg.id, msg.type, this.now());
      });
    } catch (err) {
      // Rolled back and NOT acked: the agent keeps the frame in its outbox and re-sends it.
      this.opts.logger.error({ err, kioskId: link.kioskId, msgId: msg.id }, `kiosk ${link.kioskId}: could not apply ${msg.type}`);
      this.send(link, errorFrame('internal', `could not apply ${msg.type}; it will be retried`, msg.id));
      return;
    }
    if (duplicate) {
      this.opts.logger.debug({ kioskId: link.kioskId, msgId: msg.id }, `duplicate ${msg.type}: acked again, not re-applied`);
    }
    this.send(link, frame({ type: 'ack' as const, ackId: msg.id }));
    afterCommit?.();
  }

  private refuseFrame(link: Link, code: Parameters<typeof errorFrame>[0], message: string, refId?: string): void {
    this.opts.logger.warn({ kioskId: link.kioskId, code, refId }, `kiosk ${link.kioskId} sent a bad frame: ${message}`);
    this.send(link, errorFrame(code, message, refId));
  }

  private send(link: Link, body: object): void {
    if (link.ws.readyState !== WebSocket.OPEN) return;
    link.ws.send(JSON.stringify(body));
  }

  private heartbeat(): void {
    const limit = 2 * this.opts.pingIntervalMs;
    const t = Date.now();
    for (const link of this.links.values()) {
      if (t - link.lastSeen > limit) {
        // Half-open TCP (kiosk lost power, NAT dropped us) never closes by itself; without this
        // the kiosk would look online and its orders would keep being offered to customers.
        this.opts.logger.warn({ kioskId: link.kioskId }, `kiosk ${link.kioskId}: silent for ${Math.round((t - link.lastSeen) / 1000)}s, dropping the link`);
        link.ws.terminate();
        continue;
      }
      this.send(link, frame({ type: 'ping' as const, at: this.now() }));
      try {
        link.ws.ping();
      } catch {
        /* socket closing */
      }
    }
  }
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ error: text.toLowerCase() });
  // Destroy only once the response is flushed, or the client sees a reset instead of the status.
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
