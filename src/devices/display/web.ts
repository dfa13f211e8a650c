import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../runtime/log.js';
import { texts, textsFor, type Texts } from '../texts.js';
import { screenKey, type Display, type Screen } from './model.js';
import { QUIET_ZONE, qrMatrix, qrSvg } from './qr.js';
import type { Rotation } from './surface.js';
import { URGENT_SECONDS, viewOf, type View } from './view.js';
import { pageHtml, PAGE_SOURCE } from './web-page.js';

// `display.driver: web`: the agent serves the customer's screen as a local page for Chromium
// in kiosk mode (systemd/qrkiosk-display.service), on 127.0.0.1 only. Screens go to the page
// over a WebSocket on the same port: a change sends the whole View (and the QR as SVG), a
// countdown tick sends only the seconds. A page that loses the agent says so after a few
// seconds and reconnects by itself; one that meets a newer agent reloads itself.

export const LOOPBACK_HOSTS = ['127.0.0.1'] as const;

export interface WebDisplayOptions {
  /** only 127.0.0.1: the page is for the kiosk's own browser */
  host?: string;
  /** default 8090; 0 picks a free port (tests) */
  port?: number;
  rotation?: Rotation;
  locale?: string;
  logger?: Logger;
  /** retry listening this often when the port is busy (an old agent still stopping) */
  retryMs?: number;
}

type PageMessage =
  | { type: 'hello'; build: string; rotation: Rotation; connecting: string }
  | { type: 'screen'; key: string; view: View & { urgent?: boolean }; svg?: string; modules?: number }
  | { type: 'tick'; key: string; seconds: number; countdown: string; urgent: boolean }
  | { type: 'beat' };

export class WebDisplay extends EventEmitter implements Display {
  readonly host: string;
  readonly rotation: Rotation;
  /** resolves once listening (with the page's URL) */
  readonly ready: Promise<string>;
  private readonly t: Texts;
  private readonly log: Logger | undefined;
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly html: string;
  private readonly build: string;
  private current: Screen | undefined;
  /** the last screen sent (a page that connects gets it, with the countdown as of the last tick) */
  private sent: Extract<PageMessage, { type: 'screen' }> | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly beat: NodeJS.Timeout;
  private port: number;
  private stopped: Promise<void> | undefined;
  private flushing = false;

  constructor(opts: WebDisplayOptions = {}) {
    super();
    this.host = opts.host ?? '127.0.0.1';
    if (!(LOOPBACK_HOSTS as readonly string[]).includes(this.host)) {
      throw new Error(`key "hardware.display.web.host": ${this.host} is not allowed — the kiosk page is served on loopback only: host: 127.0.0.1`);
    }
    this.port = opts.port ?? 8090;
    this.rotation = opts.rotation ?? 0;
    this.t = texts(opts.locale ?? 'es');
    this.log = opts.logger;
    this.build = createHash('sha256').update(PAGE_SOURCE).digest('hex').slice(0, 16);
    this.html = pageHtml(this.build, this.t.lang, this.t.connecting);
    this.server = createServer((req, res) => this.onRequest(req, res));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.wss.on('connection', (ws) => this.onConnection(ws));
    // lets the page tell a silent (hung) agent from a quiet screen
    this.beat = setInterval(() => this.broadcast(JSON.stringify({ type: 'beat' } satisfies PageMessage)), 5000);
    this.beat.unref();
    this.ready = new Promise<string>((resolve) => {
      const listen = () => {
        if (this.closed) return;
        this.server.listen(this.port, this.host);
      };
      this.server.on('listening', () => {
        this.port = (this.server.address() as AddressInfo).port;
        this.log?.info({ url: this.url }, 'kiosk page ready');
        resolve(this.url);
      });
      this.server.on('error', (err: NodeJS.ErrnoException) => {
        this.log?.error({ err, host: this.host, port: this.port }, `kiosk page cannot listen (${err.code}); retrying`);
        this.emit('listen-error', err);
        this.retry = setTimeout(listen, opts.retryMs ?? 2000);
        this.retry.unref();
      });
      listen();
    });
  }

  /** The page's address (the port is known once `ready` resolved). */
  get url(): string {
    return `http://${this.host}:${this.port}/`;
  }

  /** Pages connected right now. */
  get clients(): number {
    return this.wss.clients.size;
  }

  private allowedHost(h: string | undefined): boolean {
    // a page elsewhere cannot reach us through DNS rebinding: the Host must be ours
    return h === `${this.host}:${this.port}` || h === `localhost:${this.port}`;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (!this.allowedHost(req.headers.host)) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('wrong host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const common = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (path === '/') {
      res.writeHead(200, {
        ...common,
        'content-type': 'text/html; charset=utf-8',
        // nothing from anywhere else: the page must work offline, and must not be made to load things
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      });
      res.end(req.method === 'HEAD' ? undefined : this.html);
      return;
    }
    if (path === '/health') {
      res.writeHead(200, { ...common, 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/screen') {
      res.writeHead(200, { ...common, 'content-type': 'application/json' }).end(JSON.stringify(this.current ?? null));
      return;
    }
    res.writeHead(404, common).end();
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const origin = req.headers.origin;
    const okOrigin = origin === undefined || origin === `http://${this.host}:${this.port}` || origin === `http://localhost:${this.port}`;
    if ((req.url ?? '').split('?')[0] !== '/ws' || !this.allowedHost(req.headers.host) || !okOrigin || this.closed) {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
  }

  private onConnection(ws: WebSocket): void {
    ws.on('error', () => ws.terminate());
    ws.on('message', () => {
      /* the page says nothing; ignore */
    });
    ws.send(JSON.stringify({ type: 'hello', build: this.build, rotation: this.rotation, connecting: this.t.connecting } satisfies PageMessage));
    if (this.sent) ws.send(JSON.stringify(this.sent));
    this.emit('client', this.wss.clients.size);
  }

  private broadcast(msg: string): void {
    for (const c of this.wss.clients) if (c.readyState === c.OPEN) c.send(msg);
  }

  /** Records the screen; the page is told on the next turn of the event loop (never inside a vend step). */
  show(screen: Screen): void {
    if (this.closed) return;
    this.current = { ...screen };
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      if (!this.closed && this.current) this.flush(this.current);
    });
  }

  private flush(screen: Screen): void {
    const key = screenKey(screen);
    const view = viewOf(screen, textsFor(screen, this.t));
    const urgent = screen.secondsLeft !== undefined && screen.secondsLeft <= URGENT_SECONDS;
    const sent = this.sent;
    if (sent && key === sent.key) {
      // a countdown tick: a few bytes, one text node on the page
      if (view.countdown !== undefined && view.seconds !== undefined && view.seconds !== sent.view.seconds) {
        sent.view = { ...sent.view, seconds: view.seconds, countdown: view.countdown, urgent };
        this.broadcast(JSON.stringify({ type: 'tick', key, seconds: view.seconds, countdown: view.countdown, urgent } satisfies PageMessage));
      }
      return;
    }
    const msg: Extract<PageMessage, { type: 'screen' }> = { type: 'screen', key, view: { ...view, urgent } };
    if (view.qr) {
      msg.svg = qrSvg(view.qr);
      msg.modules = qrMatrix(view.qr).size + 2 * QUIET_ZONE;
    }
    this.sent = msg;
    this.broadcast(JSON.stringify(msg));
    this.emit('screen', screen);
  }

  last(): Screen | undefined {
    return this.current;
  }

  /** Shutdown: the pages are told "out of service" (no stale QR), then the server stops. */
  close(): void {
    if (this.closed) return;
    this.current = { screen: 'out_of_service', reason: 'service' };
    this.flush(this.current);
    this.closed = true;
    clearInterval(this.beat);
    if (this.retry) clearTimeout(this.retry);
    // a close handshake lets the last screen reach the page; a page that does not answer is cut
    for (const c of this.wss.clients) c.close(1001, 'agent stopping');
    const kill = setTimeout(() => {
      for (const c of this.wss.clients) c.terminate();
      this.server.closeAllConnections();
    }, 1000);
    kill.unref();
    this.stopped = new Promise<void>((resolve) => {
      if (!this.server.listening) {
        clearTimeout(kill);
        return resolve();
      }
      this.server.close(() => {
        clearTimeout(kill);
        resolve();
      });
      this.server.closeIdleConnections();
    });
    this.wss.close();
    this.emit('closed');
  }

  /** Resolves when the port is released (after close()). */
  whenClosed(): Promise<void> {
    return this.stopped ?? Promise.resolve();
  }
}
