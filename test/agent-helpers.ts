import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AgentConfigInput } from '../src/agent/config.js';
import { frame } from '../src/protocol/codec.js';
import { isReliable } from '../src/protocol/messages.js';
import type { Logger } from '../src/runtime/log.js';

// A relay written for the agent tests: speaks the real protocol on a real WebSocket, records every
// frame, and can misbehave on demand (no acks, no pongs, garbage, a cut link).

export const TOKEN = 'test-kiosk-token-0123456789';
export const POS_QR = '00020101021243650016COM.MERCADOLIBRE02013063638f1192a-5fd1-4180-a180-8bcae3556bc35204000053030325802AR5909Test Shop6004CABA63049BE1';
export const CATALOG = [
  { sku: 'COLA', name: 'Cola 350ml', price: 150000, currency: 'ARS' as const },
  { sku: 'CHIPS', name: 'Chips', price: 99000, currency: 'ARS' as const },
];

export interface Received {
  conn: number;
  at: number;
  raw: string;
  msg: Record<string, unknown> & { type: string; id: string };
}

export interface FakeRelayOptions {
  token?: string;
  /** ack reliable agent frames (default true) */
  autoAck?: boolean;
  /** answer pings with pongs (default true) */
  answerPings?: boolean;
  /** send welcome on hello (default true) */
  autoWelcome?: boolean;
  kioskId?: string;
  catalog?: Array<{ sku: string; name: string; price: number; currency: string }>;
  maxPaymentSeconds?: number;
  /** the POS sticker's QR in the welcome (default POS_QR, an ARS one) */
  posQr?: string;
  /** orders are payable only once accepted (every model but unattended) */
  qrOnAccept?: boolean;
}

export class FakeRelay extends EventEmitter {
  readonly frames: Received[] = [];
  readonly opts: Required<FakeRelayOptions>;
  /** relay -> agent reliable frames not acked yet: re-sent after each hello, like the real relay */
  readonly unacked = new Map<string, Record<string, unknown>>();
  connections = 0;
  refused = 0;
  private current: WebSocket | undefined;

  private constructor(
    private readonly wss: WebSocketServer,
    opts: FakeRelayOptions,
  ) {
    super();
    this.opts = {
      token: TOKEN,
      autoAck: true,
      answerPings: true,
      autoWelcome: true,
      kioskId: 'kiosk-test',
      catalog: CATALOG,
      maxPaymentSeconds: 300,
      posQr: POS_QR,
      qrOnAccept: false,
      ...opts,
    };
    wss.on('connection', (ws) => this.onConnection(ws));
  }

  static async start(opts: FakeRelayOptions = {}): Promise<FakeRelay> {
    let relay: FakeRelay | undefined;
    const wss = await new Promise<WebSocketServer>((resolve) => {
      const s: WebSocketServer = new WebSocketServer(
        {
          host: '127.0.0.1',
          port: 0,
          path: '/v1/kiosk',
          verifyClient: (info: { req: IncomingMessage }, cb: (ok: boolean, code?: number, msg?: string) => void) => {
            const ok = info.req.headers.authorization === `Bearer ${relay!.opts.token}`;
            if (!ok) {
              relay!.refused++;
              relay!.emit('refused');
            }
            cb(ok, 401, 'Unauthorized');
          },
        },
        () => resolve(s),
      );
    });
    relay = new FakeRelay(wss, opts);
    return relay;
  }

  get url(): string {
    const a = this.wss.address() as { port: number };
    return `ws://127.0.0.1:${a.port}/v1/kiosk`;
  }

  private onConnection(ws: WebSocket): void {
    const conn = ++this.connections;
    this.current = ws;
    this.emit('connection', conn);
    ws.on('message', (data) => {
      const raw = data.toString();
      const msg = JSON.parse(raw) as Received['msg'];
      const rec = { conn, at: Date.now(), raw, msg };
      this.frames.push(rec);
      if (msg.type === 'hello' && this.opts.autoWelcome) {
        this.sendWelcome(ws);
        for (const f of this.unacked.values()) ws.send(JSON.stringify(f));
      }
      if (msg.type === 'ping' && this.opts.answerPings) ws.send(JSON.stringify(frame({ type: 'pong', at: msg.at as number })));
      if (msg.type === 'ack') this.unacked.delete(msg.ackId as string);
      if (isReliable(msg.type) && this.opts.autoAck) ws.send(JSON.stringify(frame({ type: 'ack', ackId: msg.id })));
      this.emit('frame', rec);
    });
    ws.on('close', () => {
      if (this.current === ws) this.current = undefined;
    });
  }

  sendWelcome(ws: WebSocket | undefined = this.current): void {
    ws?.send(
      JSON.stringify(
        frame({
          type: 'welcome',
          kioskId: this.opts.kioskId,
          serverTime: Date.now(),
          paymentModel: 'unattended',
          posQr: this.opts.posQr,
          qrOnAccept: this.opts.qrOnAccept,
          catalog: this.opts.catalog,
          maxPaymentSeconds: this.opts.maxPaymentSeconds,
        }),
      ),
    );
  }

  /** A frame to the agent; reliable ones are kept and re-sent after a reconnect until acked. */
  send(body: Record<string, unknown> & { type: string }, id?: string): Record<string, unknown> {
    const f = frame(body, id);
    if (isReliable(f.type)) this.unacked.set(f.id, f);
    this.current?.send(JSON.stringify(f));
    return f;
  }

  sendRaw(text: string): void {
    this.current?.send(text);
  }

  /** Cuts the TCP connection without a close handshake (a modem dropping). */
  cut(): void {
    this.current?.terminate();
  }

  of(type: string): Received[] {
    return this.frames.filter((f) => f.msg.type === type);
  }

  /** Resolves with the first frame (already received or future) matching. */
  waitFrame(pred: (r: Received) => boolean, what = 'a frame', timeoutMs = 10_000): Promise<Received> {
    const hit = this.frames.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('frame', on);
        reject(new Error(`relay did not receive ${what} within ${timeoutMs} ms; got: ${this.frames.map((f) => f.msg.type).join(', ')}`));
      }, timeoutMs);
      const on = (r: Received) => {
        if (!pred(r)) return;
        clearTimeout(timer);
        this.off('frame', on);
        resolve(r);
      };
      this.on('frame', on);
    });
  }

  waitType(type: string, extra: (m: Received['msg']) => boolean = () => true, timeoutMs?: number): Promise<Received> {
    return this.waitFrame((r) => r.msg.type === type && extra(r.msg), `a ${type} frame`, timeoutMs);
  }

  /** Resolves after the n-th connection has sent hello. */
  waitHello(conn: number, timeoutMs?: number): Promise<Received> {
    return this.waitFrame((r) => r.msg.type === 'hello' && r.conn === conn, `hello on connection ${conn}`, timeoutMs);
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

export function tempDir(prefix = 'qrk-'): { dir: string; cleanup: () => void } {
  // short: unix socket paths must stay under ~100 bytes
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function agentConfig(dir: string, relayUrl: string, over: Partial<Record<string, unknown>> = {}): AgentConfigInput {
  const base = {
    kioskId: 'kiosk-test',
    relay: { url: relayUrl, token: TOKEN, backoff: { baseMs: 20, capMs: 200 }, pingIntervalSeconds: 15 },
    journal: { path: join(dir, 'agent.sqlite') },
    control: { socket: join(dir, 'agent.sock') },
    payment: { deadlineSeconds: 90 },
    locale: 'es-AR',
    slots: [
      { slot: 1, sku: 'COLA', stock: 5 },
      { slot: 2, sku: 'CHIPS', stock: 0 },
      { slot: 3, sku: 'NOPRICE', stock: 3 },
    ],
    hardware: {
      buttons: { driver: 'sim' },
      dispenser: {
        driver: 'sim',
        pulseMs: 20,
        dropWindowMs: 120,
        maxPulses: 2,
        sim: { fault: 'none', dropDelayMs: 10, slowDropMs: 500, pulseLog: join(dir, 'pulses.jsonl') },
      },
      display: { driver: 'none' },
    },
  };
  return { ...base, ...over } as AgentConfigInput;
}

/** A pino logger whose JSON lines the test can read and wait for. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>>; waitFor: (pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const events = new EventEmitter();
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) {
        if (!l.trim()) continue;
        const obj = JSON.parse(l) as Record<string, unknown>;
        lines.push(obj);
        events.emit('line', obj);
      }
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const hit = lines.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms`)), timeoutMs);
      const on = (l: Record<string, unknown>) => {
        if (!pred(l)) return;
        clearTimeout(timer);
        events.off('line', on);
        resolve(l);
      };
      events.on('line', on);
    });
  };
  return { logger, lines, waitFor };
}

/** Next emission of `event` whose first argument matches. */
export function nextEvent<T>(emitter: { on: (e: string, l: (v: T) => void) => unknown; off: (e: string, l: (v: T) => void) => unknown }, event: string, pred: (v: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no matching "${event}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (v: T) => {
      if (!pred(v)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(v);
    };
    emitter.on(event, on);
  });
}
