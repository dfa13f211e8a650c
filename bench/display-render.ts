// The customer's screen on a framebuffer: how long from a button press (agent.select) to the pay
// screen's frame written to the framebuffer, beside what the `qrcode` module alone needs to make
// the same QR matrix. The framebuffer is a regular file with a fake sysfs folder (what the tests
// use), on tmpfs; on a Pi the write goes to /dev/fb0 instead, which costs about the same memory copy.
//
// Figures, each a median and p99 over N runs on one 2-core machine (see README.md):
//   select -> pay frame written  the real agent: journal transaction (fsync), order.ready to a
//                                 loopback relay, screen model, layout, paint, one write
//   new screen -> frame written   FramebufferDisplay.show() of a pay screen with a new QR payload
//                                 each time: QR encoding + layout + paint + write (the worst case)
//   countdown tick -> frame       the once-a-second redraw: copy of the cached frame + countdown
//   qrcode alone                  QRCode.create(payload, { errorCorrectionLevel: 'M' })

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import QRCode from 'qrcode';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { startAgent } from '../src/agent/agent.js';
import { formatMoney } from '../src/core/money.js';
import { FramebufferDisplay, type FrameEvent, type Screen } from '../src/devices/display.js';
import { SimDispenser } from '../src/devices/dispenser.js';
import { clearQrCache } from '../src/devices/display/qr.js';
import type { FbGeometry } from '../src/devices/display/surface.js';
import { frame } from '../src/protocol/codec.js';
import { isReliable } from '../src/protocol/messages.js';

export const BENCH_QR =
  '00020101021243650016COM.MERCADOLIBRE02013063638f1192a-5fd1-4180-a180-8bcae3556bc35204000053030325802AR5909Test Shop6004CABA63049BE1';

export interface Figure {
  what: string;
  runs: number;
  medianMs: number;
  p99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

function figure(what: string, samples: number[]): Figure {
  const s = [...samples].sort((a, b) => a - b);
  return { what, runs: s.length, medianMs: percentile(s, 50), p99Ms: percentile(s, 99) };
}

/**
 * A framebuffer device is memory: the stand-in file goes to /dev/shm (tmpfs) where there is one,
 * not to a disk whose writeback (other processes' I/O on a shared machine) would stall write().
 */
function framebufferDir(dir: string): string {
  if (!existsSync('/dev/shm')) return dir;
  const shm = join('/dev/shm', basename(dir));
  mkdirSync(shm, { recursive: true });
  return shm;
}

export function fakeFramebuffer(dir: string, g: FbGeometry): { device: string; sysfs: string } {
  dir = framebufferDir(dir);
  const sysfs = join(dir, `sys-${g.width}x${g.height}-${g.bpp}`);
  mkdirSync(sysfs, { recursive: true });
  writeFileSync(join(sysfs, 'bits_per_pixel'), `${g.bpp}\n`);
  writeFileSync(join(sysfs, 'virtual_size'), `${g.width},${g.height}\n`);
  writeFileSync(join(sysfs, 'stride'), `${g.stride}\n`);
  const device = join(dir, `fb-${g.width}x${g.height}-${g.bpp}`);
  writeFileSync(device, '');
  return { device, sysfs };
}

export function nextFrame(d: FramebufferDisplay, pred: (e: FrameEvent) => boolean): Promise<FrameEvent> {
  return new Promise((resolve) => {
    const on = (e: FrameEvent) => {
      if (!pred(e)) return;
      d.off('frame', on);
      resolve(e);
    };
    d.on('frame', on);
  });
}

/** A relay that only welcomes and acks, and says an order is paid when told: enough for the agent to sell. */
async function miniRelay(token: string): Promise<{ url: string; pay: (orderId: string) => void; close: () => Promise<void> }> {
  const wss = await new Promise<WebSocketServer>((resolve) => {
    const s: WebSocketServer = new WebSocketServer(
      {
        host: '127.0.0.1',
        port: 0,
        path: '/v1/kiosk',
        verifyClient: (info: { req: IncomingMessage }) => info.req.headers.authorization === `Bearer ${token}`,
      },
      () => resolve(s),
    );
  });
  wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string; id: string; at?: number };
      if (msg.type === 'hello') {
        ws.send(
          JSON.stringify(
            frame({
              type: 'welcome',
              kioskId: 'bench',
              serverTime: Date.now(),
              paymentModel: 'unattended',
              posQr: BENCH_QR,
              catalog: [{ sku: 'COLA', name: 'Cola 350ml', price: 150000, currency: 'ARS' }],
              maxPaymentSeconds: 120,
            }),
          ),
        );
      }
      if (msg.type === 'ping') ws.send(JSON.stringify(frame({ type: 'pong', at: msg.at as number })));
      if (isReliable(msg.type)) ws.send(JSON.stringify(frame({ type: 'ack', ackId: msg.id })));
    });
  });
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/kiosk`,
    pay: (orderId) => {
      const paid = frame({ type: 'order.paid', orderId, paymentId: `pay_${orderId}`, amount: 150000, currency: 'ARS' });
      for (const c of wss.clients) c.send(JSON.stringify(paid));
    },
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

export async function selectToFrame(dir: string, g: FbGeometry, runs: number): Promise<{ samples: number[]; qrcode: number[] }> {
  const token = 'bench-token-0123456789';
  const relay = await miniRelay(token);
  const fb = fakeFramebuffer(dir, g);
  const display = new FramebufferDisplay({ device: fb.device, sysfs: fb.sysfs, locale: 'es-AR', refreshMs: 0 });
  const silent = pino({ level: 'silent' });
  const agent = await startAgent(
    {
      kioskId: 'bench',
      relay: { url: relay.url, token },
      journal: { path: join(dir, `agent-${g.width}.sqlite`) },
      control: { socket: join(dir, `a${g.width}.sock`) },
      slots: [{ slot: 1, sku: 'COLA', stock: 100_000 }],
      hardware: { buttons: { driver: 'none' }, display: { driver: 'none' }, dispenser: { driver: 'sim' } },
    },
    {
      logger: silent,
      display,
      dispenser: new SimDispenser({ pulseMs: 1, dropWindowMs: 10, maxPulses: 1, fault: 'none', dropDelayMs: 1, slowDropMs: 5 }),
      timings: { resultScreenMs: 0 },
      control: false,
    },
  );
  const samples: number[] = [];
  const qrcode: number[] = [];
  try {
    while (!agent.status().relay.lastWelcomeAt) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < runs + 5; i++) {
      const q = qrcodeAlone(() => `${BENCH_QR}s${i}`, 1, 0);
      if (i >= 5) qrcode.push(q[0]!);
      const t0 = performance.now();
      const sel = agent.select(1);
      if (!sel.ok) throw new Error(`select refused: ${sel.reason}`);
      // the frame's own write time: the pay frame is written inside select(), before the order's
      // journal commit (FramebufferDisplay.showNow), and announced after select() returns
      const e = await nextFrame(display, (e) => e.screen.screen === 'pay' && e.screen.orderId === sel.orderId);
      if (i >= 5) samples.push(e.writtenAt - t0); // the first few warm the JIT and glyph caches
      // each press is a sale: paid, dispensed, thanked, back to idle; the next press then finds
      // the pay screen painted as a kiosk in use does (a sale's own screens do not evict it)
      const idle = nextFrame(display, (e) => e.screen.screen === 'idle');
      relay.pay(sel.orderId);
      await idle;
      while (agent.status().state !== 'idle') await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    await agent.close();
    await relay.close();
  }
  return { samples, qrcode };
}

export async function showToFrame(dir: string, g: FbGeometry, runs: number): Promise<{ fresh: number[]; tick: number[]; qrcode: number[] }> {
  const fb = fakeFramebuffer(dir, g);
  const d = new FramebufferDisplay({ device: fb.device, sysfs: fb.sysfs, locale: 'es-AR', refreshMs: 0 });
  const fresh: number[] = [];
  const tick: number[] = [];
  const qrcode: number[] = [];
  try {
    for (let i = 0; i < runs + 5; i++) {
      // the floor, sampled beside each frame so a neighbour's burst lands on both
      const q = qrcodeAlone(() => `${BENCH_QR}q${i}`, 1, 0);
      if (i >= 5) qrcode.push(q[0]!);
      clearQrCache();
      const s: Screen = { screen: 'pay', product: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), qr: `${BENCH_QR}${i}`, secondsLeft: 90, orderId: `ord_${i}` };
      let t0 = performance.now();
      let f = nextFrame(d, (e) => e.screen.orderId === s.orderId && e.screen.secondsLeft === 90);
      d.show(s);
      await f;
      if (i >= 5) fresh.push(performance.now() - t0);
      t0 = performance.now();
      f = nextFrame(d, (e) => e.screen.orderId === s.orderId && e.screen.secondsLeft === 89);
      d.show({ ...s, secondsLeft: 89 });
      const e = await f;
      if (e.full) throw new Error('a countdown tick redrew the whole screen');
      if (i >= 5) tick.push(performance.now() - t0);
      // back to the idle screen between orders, as the kiosk does
      f = nextFrame(d, (e) => e.screen.screen === 'idle');
      d.show({ screen: 'idle', products: [{ slot: 1, name: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), available: true }] });
      await f;
    }
  } finally {
    d.close();
  }
  return { fresh, tick, qrcode };
}

export function qrcodeAlone(payload: (i: number) => string, runs: number, warm = 5): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs + warm; i++) {
    const p = payload(i);
    const t0 = performance.now();
    QRCode.create(p, { errorCorrectionLevel: 'M' });
    if (i >= warm) out.push(performance.now() - t0);
  }
  return out;
}

export interface DisplayFigures {
  panel: string;
  /** agent.select -> pay frame written (journal commit, order.ready, screen, frame) */
  select: Figure;
  /** a pay screen with a new QR (a per-order QR) -> frame written */
  fresh: Figure;
  /** countdown tick -> frame written */
  tick: Figure;
  /** QRCode.create of a payload of the same length, sampled beside the frames */
  qrcode: Figure;
}

export async function benchDisplay(runs = 200): Promise<DisplayFigures[]> {
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-fb-'));
  const panels: Array<{ name: string; g: FbGeometry; runs: number }> = [
    { name: '800x480 XRGB8888', g: { width: 800, height: 480, bpp: 32, stride: 3200 }, runs },
    { name: '320x240 RGB565', g: { width: 320, height: 240, bpp: 16, stride: 640 }, runs },
  ];
  const out: DisplayFigures[] = [];
  try {
    for (const p of panels) {
      const sel = await selectToFrame(dir, p.g, p.runs);
      const { fresh, tick, qrcode } = await showToFrame(dir, p.g, p.runs);
      out.push({
        panel: p.name,
        select: figure(`select -> pay frame written, ${p.name}`, sel.samples),
        fresh: figure(`new pay screen (new QR) -> frame written, ${p.name}`, fresh),
        tick: figure(`countdown tick -> frame written, ${p.name}`, tick),
        qrcode: figure('qrcode alone: QRCode.create of the same payload length', [...sel.qrcode, ...qrcode]),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(framebufferDir(dir), { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const d of await benchDisplay(Number(process.env.BENCH_FRAMES ?? 200))) {
    for (const f of [d.select, d.fresh, d.tick, d.qrcode]) console.log(`${f.what}: median ${f.medianMs.toFixed(2)} ms, p99 ${f.p99Ms.toFixed(2)} ms (${f.runs} runs)`);
  }
}
