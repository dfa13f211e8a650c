import { EventEmitter } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync, write, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../runtime/log.js';
import { DEJAVU_SANS_BOLD } from '../fonts/dejavu-sans-bold.js';
import { texts, textsFor, type Texts } from '../texts.js';
import { BitmapFont } from './font.js';
import { layoutView, urgent, type Layout } from './layout.js';
import { screenKey, type Display, type Screen } from './model.js';
import { paintDynamic, paintQrModules, paintStatic, plainKey } from './paint.js';
import { QUIET_ZONE, qrMatrix, type QrMatrix } from './qr.js';
import { Surface, frameBytes, type FbGeometry, type Rotation } from './surface.js';
import { viewOf, type View } from './view.js';
import type { DeviceReport } from '../report.js';

// `display.driver: framebuffer`: draws on a Linux framebuffer (/dev/fbN) with no X, no browser
// and no native addon. The geometry comes from sysfs; each frame is drawn off-screen in the
// panel's own pixel format and written with one write, so the panel never shows half a frame
// being drawn. show() only records the screen: drawing happens on a later turn of the event loop
// and the write in libuv's thread pool, so a vend never waits for pixels.

export class FramebufferError extends Error {
  override name = 'FramebufferError';
}

let sharedFont: BitmapFont | undefined;
/** The built-in font (decoded once per process). */
export function builtinFont(): BitmapFont {
  sharedFont ??= new BitmapFont(DEJAVU_SANS_BOLD);
  return sharedFont;
}

function readAttr(dir: string, name: string, key: string): string {
  const file = join(dir, name);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new FramebufferError(
      `key "${key}": cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}) — ` +
        'point it at the /sys/class/graphics/fbN folder of the panel (`ls /sys/class/graphics`, `cat /sys/class/graphics/fb*/name`)',
    );
  }
}

/**
 * Reads a framebuffer's geometry from its sysfs folder: bits_per_pixel, virtual_size ("W,H"),
 * stride (bytes per row, with the driver's padding) and, when present, the visible mode from
 * `modes` ("U:800x480p-0"), which can be smaller than the virtual size on drivers that allocate
 * two pages.
 */
export function readFbGeometry(sysfs: string, key = 'hardware.display.framebuffer.sysfs'): FbGeometry {
  const bppText = readAttr(sysfs, 'bits_per_pixel', key);
  const bpp = Number(bppText);
  if (bpp !== 16 && bpp !== 24 && bpp !== 32) {
    throw new FramebufferError(
      `key "${key}": ${join(sysfs, 'bits_per_pixel')} says ${bppText}; only 16 (RGB565), 24 and 32 (XRGB8888) bits per pixel are drawn — ` +
        'set the panel to 16 or 32 bpp (framebuffer_depth=32 in config.txt, or the overlay\'s bpp option)',
    );
  }
  const vs = /^(\d+),(\d+)$/.exec(readAttr(sysfs, 'virtual_size', key));
  if (!vs) throw new FramebufferError(`key "${key}": ${join(sysfs, 'virtual_size')} is not "width,height"`);
  let width = Number(vs[1]);
  let height = Number(vs[2]);
  const stride = Number(readAttr(sysfs, 'stride', key));
  if (existsSync(join(sysfs, 'modes'))) {
    const mode = /(\d+)x(\d+)/.exec(readFileSync(join(sysfs, 'modes'), 'utf8'));
    if (mode && Number(mode[1]) <= width && Number(mode[2]) <= height) {
      width = Number(mode[1]);
      height = Number(mode[2]);
    }
  }
  if (!Number.isInteger(stride) || stride < (width * bpp) / 8) {
    throw new FramebufferError(`key "${key}": ${join(sysfs, 'stride')} (${stride}) is shorter than a row of ${width} pixels at ${bpp} bpp`);
  }
  if (width < 1 || height < 1) throw new FramebufferError(`key "${key}": the framebuffer reports a size of ${width}x${height}`);
  return { width, height, bpp: bpp as FbGeometry['bpp'], stride };
}

export interface FramebufferOptions {
  /** the device to write, default /dev/fb0 (a regular file works: tests, screenshots) */
  device?: string;
  /** its sysfs folder, default /sys/class/graphics/<device name> */
  sysfs?: string;
  rotation?: Rotation;
  locale?: string;
  logger?: Logger;
  font?: BitmapFont;
  /** rewrite the current frame this often even when nothing changed (heals console scribbles); 0 = never */
  refreshMs?: number;
}

export interface FrameEvent {
  screen: Screen;
  /** drawing time (layout + paint, or copy + countdown on a tick) */
  renderMs: number;
  /** from show() to the frame written */
  latencyMs: number;
  /** performance.now() when the write ended (a showNow() frame is announced after its caller returns) */
  writtenAt: number;
  /** whether the static part was redrawn (false: a countdown tick over the cached frame) */
  full: boolean;
}

/** plain screens kept painted (idle + pay); each is one frame of memory (1.5 MB at 800x480x32) */
const PLAIN_SCREENS = 2;
/**
 * The screens kept as plain surfaces: the ones a customer waits for. Every other screen (a sale's
 * dispensing and result screens, out of service) is painted straight into the frame written, so a
 * completed sale does not push the pay screen out of the cache: the next customer's press is a
 * copy and the QR, not a repaint (bench/README.md, "After a sale").
 */
const KEPT_PLAIN: ReadonlySet<Screen['screen']> = new Set(['idle', 'pay']);
/** layouts kept (a few screens alternate: idle, pay, a result) */
const LAYOUTS = 4;
/** countdown pills kept as pixels (a few KB each) */
const COUNTDOWNS = 4;

/** A rectangle a frame paints over its plain screen; `opaque`: every pixel of it is painted. */
interface Overlay {
  x: number;
  y: number;
  w: number;
  h: number;
  opaque: boolean;
}

/** What each frame paints over the plain screen: the QR's square (all of it) and the countdown. */
function overlaysOf(layout: Layout): Overlay[] {
  const out: Overlay[] = [];
  for (const op of layout.ops) {
    if (op.kind === 'qr') {
      const side = (op.matrix.size + 2 * QUIET_ZONE) * op.module;
      out.push({ x: op.x, y: op.y, w: side, h: side, opaque: true });
    }
  }
  for (const op of layout.dynamic) if (op.kind === 'countdown') out.push({ x: op.x, y: op.y, w: op.w, h: op.h, opaque: false });
  return out;
}

const sameBox = (a: Overlay, b: Overlay) => a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;

/**
 * The view's key for its layout: the countdown's digits do not move anything, and of the QR only
 * its size (modules per side) does (layout.ts payLayout): a new order's QR of the same size lays
 * out as the last one did.
 */
function layoutKey(v: View, qrSize: number | undefined): string {
  return JSON.stringify(v, (k, val: unknown) => (k === 'seconds' ? undefined : k === 'qr' ? qrSize : k === 'countdown' && typeof val === 'string' ? val.replace(/\d/g, '8') : val));
}

/** A cached layout with another matrix of the same size in its QR op (the rest is the same). */
function withMatrix(layout: Layout, matrix: QrMatrix): Layout {
  return { ...layout, ops: layout.ops.map((op) => (op.kind === 'qr' && op.matrix !== matrix ? { ...op, matrix } : op)) };
}

/**
 * Writes 0 to the framebuffer's sysfs `blank`. That file belongs to root (mode 0644) unless the
 * udev rule hands it to group qrkiosk; the video group only opens /dev/fbN. Never silent: the
 * answer is shown by `qrkiosk hardware`.
 */
export function unblankPanel(sysfs: string): { ok: true } | { ok: false; reason: string } {
  const file = join(sysfs, 'blank');
  if (!existsSync(file)) return { ok: false, reason: `${file} does not exist (this framebuffer driver has no blanking control)` };
  try {
    writeFileSync(file, '0');
    return { ok: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ok: false,
      reason:
        code === 'EACCES' || code === 'EPERM'
          ? `${file} is writable only by root: install hardware/udev/99-qrkiosk.rules (it gives group qrkiosk that file), and add consoleblank=0 to cmdline.txt so the console never blanks the panel`
          : `${file}: ${(err as Error).message}`,
    };
  }
}

export class FramebufferDisplay extends EventEmitter implements Display {
  readonly geometry: FbGeometry;
  /** could the panel be unblanked at start (`qrkiosk hardware`) */
  readonly unblank: { ok: true } | { ok: false; reason: string };
  readonly device: string;
  readonly rotation: Rotation;
  private readonly fd: number;
  private readonly t: Texts;
  private readonly font: BitmapFont;
  private readonly log: Logger | undefined;
  /** two frames: one may be in flight to the device while the other is drawn */
  private readonly frames: [Surface, Surface];
  private next = 0;
  /**
   * Plain screens (all but the QR's modules and the countdown) painted earlier, newest first, at
   * most PLAIN_SCREENS and one per screen: a kiosk alternates between its idle screen and a pay
   * screen, and both stay painted. `base` is the current screen's.
   */
  private plains: Array<{ key: string; screen: Screen['screen']; surface: Surface }> = [];
  private base: Surface;
  private baseKey: string | undefined;
  private layout: Layout | undefined;
  private overlays: Overlay[] = [];
  /** layouts by layoutKey, with their plainKey, newest last */
  private readonly layouts = new Map<string, { layout: Layout; plain: string }>();
  /** how many times each plain surface was painted: a frame copied from it earlier is stale after a repaint */
  private readonly paints = new Map<Surface, number>();
  /** what each of the two frames holds: a copy of a plain surface (at a paint count) and what was painted over it */
  private readonly holds = new Map<Surface, { plain: Surface; paint: number; overlays: Overlay[] }>();
  /** countdown pills kept as pixels (paintCountdown) */
  private readonly countdowns = new Map<string, Buffer>();
  /** a number for each plain surface, for the countdown keys */
  private readonly paintIds = new Map<Surface, number>();
  /** the screen showNow() drew, until the show() of the same screen that follows it */
  private drawnEarly: string | undefined;
  private current: Screen | undefined;
  private pending: { screen: Screen; at: number } | undefined;
  private scheduled = false;
  private writing = false;
  private closed = false;
  private lastFront: Surface | undefined;
  private lastError: string | undefined;
  private readonly refresh: NodeJS.Timeout | undefined;
  framesWritten = 0;

  constructor(opts: FramebufferOptions = {}) {
    super();
    this.device = opts.device ?? '/dev/fb0';
    const sysfs = opts.sysfs ?? join('/sys/class/graphics', basename(this.device));
    this.geometry = readFbGeometry(sysfs);
    this.rotation = opts.rotation ?? 0;
    this.t = texts(opts.locale ?? 'es');
    this.font = opts.font ?? builtinFont();
    this.log = opts.logger;
    try {
      this.fd = openSync(this.device, 'r+');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new FramebufferError(
        `key "hardware.display.framebuffer.device": cannot open ${this.device} (${code ?? (err as Error).message}) — ` +
          (code === 'EACCES' ? "add the agent's user to the video group" : 'check the device name (`ls /dev/fb*`)'),
      );
    }
    this.frames = [new Surface(this.geometry, this.rotation), new Surface(this.geometry, this.rotation)];
    // nothing drawn yet (baseKey undefined): the first draw sets the real one
    this.base = this.frames[0];
    // a panel the console blanked shows nothing: unblank it, and say so when that is not allowed
    this.unblank = unblankPanel(sysfs);
    if (!this.unblank.ok) this.log?.warn({ sysfs }, `framebuffer unblanking unavailable: ${this.unblank.reason}`);
    const refreshMs = opts.refreshMs ?? 5000;
    if (refreshMs > 0) {
      this.refresh = setInterval(() => this.rewrite(), refreshMs);
      this.refresh.unref();
    }
    this.log?.info({ device: this.device, ...this.geometry, rotation: this.rotation }, 'framebuffer display ready');
  }

  /** Logical size (after rotation). */
  get width(): number {
    return this.frames[0].width;
  }
  get height(): number {
    return this.frames[0].height;
  }

  show(screen: Screen): void {
    if (this.closed) return;
    const early = this.drawnEarly;
    this.drawnEarly = undefined;
    this.current = { ...screen };
    // the same screen showNow() drew a moment ago (drawn, or waiting for the write before it)
    if (early !== undefined && early === frameKey(screen)) return;
    this.pending = { screen: this.current, at: performance.now() };
    this.schedule();
  }

  /**
   * Like show(), but draws and writes the frame before returning: for the screen a customer waits
   * for, put on the panel before the caller goes on with slow synchronous work of its own (the
   * journal's fsync). The write is synchronous (as every drawn frame's): through libuv's thread
   * pool it ended only after that fsync and a thread hop back (profiled, bench/README.md round 3),
   * which a loaded machine stretched to milliseconds. A show() of the
   * same screen right after draws nothing again. While a frame is being written it waits for it,
   * as show() does.
   */
  showNow(screen: Screen): void {
    if (this.closed) return;
    this.current = { ...screen };
    this.pending = { screen: this.current, at: performance.now() };
    this.drawnEarly = frameKey(screen);
    if (this.writing) return this.schedule();
    this.drawPending(true);
  }

  last(): Screen | undefined {
    return this.current;
  }

  /** `qrkiosk hardware` */
  describe(): DeviceReport {
    const g = this.geometry;
    return {
      role: 'display',
      driver: 'framebuffer',
      status: this.lastError ? 'fault' : 'ok',
      detail:
        `${this.device} ${g.width}x${g.height} ${g.bpp} bpp, rotation ${this.rotation}, ${this.framesWritten} frame(s) written; ` +
        `unblank: ${this.unblank.ok ? 'ok' : `UNAVAILABLE (${this.unblank.reason})`}${this.lastError ? `; last error: ${this.lastError}` : ''}`,
    };
  }

  /** The layout of the screen drawn last (tests check what fits where). */
  lastLayout(): Layout | undefined {
    return this.layout;
  }

  private schedule(): void {
    if (this.scheduled || this.writing || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drawPending();
    });
  }

  /**
   * Draws a screen into a surface. The plain part (all but the QR's modules and the countdown) is
   * repainted only when it differs from the cached one; every frame is then a copy of it, the
   * QR's modules (runs of filled rows) and the countdown. The idle screen, which has neither, is
   * its plain surface: written as it is, `into` untouched (at idle only the plain screens are
   * resident, not the two frames). Any other screen without a QR or a countdown (KEPT_PLAIN) is
   * painted into `into`. Returns what to write and whether the plain part was repainted.
   */
  private draw(screen: Screen, into: Surface): { surface: Surface; full: boolean } {
    const key = screenKey(screen);
    let full = false;
    if (key !== this.baseKey) {
      const { layout, plain } = this.layoutFor(viewOf(screen, textsFor(screen, this.t)), screen);
      this.layout = layout;
      this.overlays = overlaysOf(layout);
      if (this.overlays.length === 0 && !KEPT_PLAIN.has(screen.screen)) {
        // painted into the frame itself; that frame no longer holds a copy of a plain surface
        if (this.lastFront === into) this.lastFront = undefined;
        paintStatic(layout, into, this.font, { qrModules: false });
        this.holds.delete(into);
        this.base = into;
        this.baseKey = key;
        return { surface: into, full: true };
      }
      const i = this.plains.findIndex((p) => p.key === plain);
      let hit = i >= 0 ? this.plains.splice(i, 1)[0]! : undefined;
      if (!hit) {
        // Repaint the surface of the same screen's older version (idle saying "connecting" before
        // the catalog came; the pay screen of the previous product): it will not be shown again
        // soon, and keeping it would cost a frame of memory and push the other screen out. Else
        // reuse the oldest surface once PLAIN_SCREENS are painted, else take a new one.
        const same = this.plains.findIndex((p) => p.screen === screen.screen);
        const reuse = same >= 0 ? this.plains.splice(same, 1)[0]! : this.plains.length >= PLAIN_SCREENS ? this.plains.pop()! : undefined;
        const surface = reuse?.surface ?? new Surface(this.geometry, this.rotation);
        hit = { key: plain, screen: screen.screen, surface };
        // the panel may show this very surface: after the repaint, compare with nothing
        if (this.lastFront === surface) this.lastFront = undefined;
        paintStatic(layout, hit.surface, this.font, { qrModules: false });
        this.paints.set(surface, (this.paints.get(surface) ?? 0) + 1);
        if (!this.paintIds.has(surface)) this.paintIds.set(surface, this.paintIds.size);
        full = true;
      }
      this.plains.unshift(hit);
      this.base = hit.surface;
      this.baseKey = key;
    }
    if (this.overlays.length === 0) return { surface: this.base, full };
    // A frame that already holds this plain screen gets back only what its last draw painted
    // over it (the countdown); the QR's square is painted whole again anyway. Else a full copy.
    const paint = this.paints.get(this.base) ?? 0;
    const held = this.holds.get(into);
    if (held && held.plain === this.base && held.paint === paint) {
      for (const o of held.overlays) {
        if (!this.overlays.some((n) => n.opaque && sameBox(n, o))) into.copyRectFrom(this.base, o.x, o.y, o.w, o.h);
      }
    } else {
      into.copyFrom(this.base);
    }
    this.holds.set(into, { plain: this.base, paint, overlays: this.overlays });
    paintQrModules(this.layout!, into);
    const v = screen.secondsLeft !== undefined ? { seconds: screen.secondsLeft, text: textsFor(screen, this.t).secondsLeft(screen.secondsLeft) } : undefined;
    this.paintCountdown(into, paint, v);
    return { surface: into, full };
  }

  /**
   * The countdown, from a few kept as pixels: every order's pay screen opens on the same count
   * (the payment deadline), so its first frame copies the pill instead of anti-aliasing it again.
   */
  private paintCountdown(into: Surface, paint: number, v: { seconds: number; text: string } | undefined): void {
    if (!v) return;
    const box = this.overlays.find((o) => !o.opaque);
    if (!box) return paintDynamic(this.layout!, into, this.font, v);
    const key = `${this.paintIds.get(this.base)}.${paint}|${box.x},${box.y},${box.w},${box.h}|${urgent(v.seconds)}|${v.text}`;
    const hit = this.countdowns.get(key);
    if (hit) return into.writeRect(box.x, box.y, box.w, box.h, hit);
    paintDynamic(this.layout!, into, this.font, v);
    if (this.countdowns.size >= COUNTDOWNS) this.countdowns.delete(this.countdowns.keys().next().value!);
    this.countdowns.set(key, into.readRect(box.x, box.y, box.w, box.h));
  }

  /** The layout of a view (cached: the next order for the same product lays out the same). */
  private layoutFor(view: View, screen: Screen): { layout: Layout; plain: string } {
    // the matrix is made here (layoutView's own call then finds it in qr.ts's cache)
    const matrix = view.qr ? qrMatrix(view.qr) : undefined;
    const key = layoutKey(view, matrix?.size);
    let hit = this.layouts.get(key);
    if (hit) {
      this.layouts.delete(key);
      if (matrix) hit = { layout: withMatrix(hit.layout, matrix), plain: hit.plain };
    } else {
      const layout = layoutView(view, this.base.width, this.base.height, this.font);
      if (layout.problems.length) this.log?.warn({ screen: screen.screen, problems: layout.problems }, 'screen does not fit the panel');
      hit = { layout, plain: plainKey(layout) };
      if (this.layouts.size >= LAYOUTS) this.layouts.delete(this.layouts.keys().next().value!);
    }
    this.layouts.set(key, hit);
    return hit;
  }

  /** `announceLater`: showNow()'s frame, announced after its caller returns */
  private drawPending(announceLater = false): void {
    const p = this.pending;
    if (!p || this.writing || this.closed) return;
    this.pending = undefined;
    const t0 = performance.now();
    const { surface: back, full } = this.draw(p.screen, this.frames[this.next]!);
    if (back === this.frames[this.next]) this.next ^= 1;
    const renderMs = performance.now() - t0;
    this.writeFrame(
      back,
      () => {
        const writtenAt = performance.now();
        const e = { screen: p.screen, renderMs, latencyMs: writtenAt - p.at, writtenAt, full } satisfies FrameEvent;
        // a frame written inside showNow() is announced once its caller has returned (listeners
        // must not run in the middle of the caller's work, e.g. before its journal commit)
        if (announceLater) process.nextTick(() => this.emit('frame', e));
        else this.emit('frame', e);
      },
      false,
      true,
    );
  }

  /**
   * Writes a frame to the device. Only the band of rows that differs from the frame last written
   * goes out (a countdown tick is a few rows, not the whole panel); `whole` rewrites everything
   * (the periodic refresh that heals console scribbles), as does any write after a failed one.
   * `sync` writes before returning: every drawn frame (a framebuffer is memory: the copy costs
   * less than the thread-pool round trip it replaced, and a loaded machine stretched that hop to
   * milliseconds, bench/README.md round 3); the periodic refresh of the whole panel, which nobody
   * waits for, runs in libuv's thread pool.
   */
  private writeFrame(frame: Surface, done?: () => void, whole = false, sync = false): void {
    this.writing = true;
    const stride = this.geometry.stride;
    let start = 0;
    let end = frameBytes(this.geometry);
    const prev = this.lastFront;
    if (!whole && prev && this.lastError === undefined) {
      // the same surface again (a plain screen, not repainted since: draw() forgets lastFront
      // when it repaints it) is the same picture
      const band = prev === frame ? undefined : changedRows(prev.buf, frame.buf, stride, this.geometry.height);
      start = band ? band.first * stride : 0;
      end = band ? (band.last + 1) * stride : 0;
    }
    const finish = (err: NodeJS.ErrnoException | null) => {
      this.writing = false;
      if (err) {
        if (err.code !== this.lastError) this.log?.error({ err, device: this.device }, 'framebuffer write failed');
        this.lastError = err.code;
      } else {
        this.lastError = undefined;
        this.lastFront = frame;
        this.framesWritten++;
      }
      if (this.closed) return this.finalFrame();
      done?.();
      if (this.pending) this.schedule();
    };
    if (start === end) return finish(null); // the same picture: nothing to send
    if (sync) {
      let err: NodeJS.ErrnoException | null = null;
      try {
        for (let off = start; off < end; ) {
          const n = writeSync(this.fd, frame.buf, off, end - off, off);
          if (n <= 0) break;
          off += n;
        }
      } catch (e) {
        err = e as NodeJS.ErrnoException;
      }
      return finish(err);
    }
    // one write of the band; a short write (never seen on fbdev) continues where it stopped
    const go = (off: number) =>
      write(this.fd, frame.buf, off, end - off, off, (err, n) => {
        if (err) return finish(err);
        if (off + n < end && n > 0) return go(off + n);
        finish(null);
      });
    go(start);
  }

  /** Re-sends the frame on screen (the console may have drawn over it). */
  private rewrite(): void {
    if (this.writing || this.closed || !this.lastFront || this.pending) return;
    this.writeFrame(this.lastFront, undefined, true);
  }

  /** Shutdown: an out-of-service screen (never a stale QR), written synchronously, and the device closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.refresh) clearInterval(this.refresh);
    if (!this.writing) this.finalFrame();
  }

  private finalFrame(): void {
    try {
      const frame = this.frames[this.next]!;
      this.baseKey = undefined;
      const drawn = this.draw({ screen: 'out_of_service', reason: 'service' }, frame).surface;
      writeSync(this.fd, drawn.buf, 0, frameBytes(this.geometry), 0);
    } catch (err) {
      this.log?.warn({ err }, 'could not draw the shutdown screen');
    }
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.emit('closed');
  }
}

/** A screen as drawn: its key and its countdown (two equal keys are the same pixels). */
function frameKey(s: Screen): string {
  return `${s.secondsLeft ?? ''}|${screenKey(s)}`;
}

/** The first and last rows in which two frames differ; undefined when they are identical. */
export function changedRows(a: Buffer, b: Buffer, stride: number, rows: number): { first: number; last: number } | undefined {
  const same = (r: number) => a.compare(b, r * stride, (r + 1) * stride, r * stride, (r + 1) * stride) === 0;
  let first = 0;
  while (first < rows && same(first)) first++;
  if (first === rows) return undefined;
  let last = rows - 1;
  while (last > first && same(last)) last--;
  return { first, last };
}
