import { EventEmitter } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync, write, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../runtime/log.js';
import { DEJAVU_SANS_BOLD } from '../fonts/dejavu-sans-bold.js';
import { texts, textsFor, type Texts } from '../texts.js';
import { BitmapFont } from './font.js';
import { layoutView, type Layout } from './layout.js';
import { screenKey, type Display, type Screen } from './model.js';
import { paintDynamic, paintStatic } from './paint.js';
import { Surface, frameBytes, type FbGeometry, type Rotation } from './surface.js';
import { viewOf } from './view.js';
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
  /** whether the static part was redrawn (false: a countdown tick over the cached frame) */
  full: boolean;
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
  /** the current screen's static part, drawn once */
  private readonly base: Surface;
  private baseKey: string | undefined;
  private layout: Layout | undefined;
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
    this.base = new Surface(this.geometry, this.rotation);
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
    this.current = { ...screen };
    this.pending = { screen: this.current, at: performance.now() };
    this.schedule();
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

  /** Draws a screen into a surface: the static part from cache when only the countdown changed. */
  private draw(screen: Screen, into: Surface): boolean {
    const key = screenKey(screen);
    const full = key !== this.baseKey;
    if (full) {
      this.layout = layoutView(viewOf(screen, textsFor(screen, this.t)), this.base.width, this.base.height, this.font);
      if (this.layout.problems.length) this.log?.warn({ screen: screen.screen, problems: this.layout.problems }, 'screen does not fit the panel');
      paintStatic(this.layout, this.base, this.font);
      this.baseKey = key;
    }
    into.copyFrom(this.base);
    const v = screen.secondsLeft !== undefined ? { seconds: screen.secondsLeft, text: textsFor(screen, this.t).secondsLeft(screen.secondsLeft) } : undefined;
    paintDynamic(this.layout!, into, this.font, v);
    return full;
  }

  private drawPending(): void {
    const p = this.pending;
    if (!p || this.writing || this.closed) return;
    this.pending = undefined;
    const t0 = performance.now();
    const back = this.frames[this.next]!;
    this.next ^= 1;
    const full = this.draw(p.screen, back);
    const renderMs = performance.now() - t0;
    this.writeFrame(back, () => {
      this.emit('frame', { screen: p.screen, renderMs, latencyMs: performance.now() - p.at, full } satisfies FrameEvent);
    });
  }

  private writeFrame(frame: Surface, done?: () => void): void {
    this.writing = true;
    const len = frameBytes(this.geometry);
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
    // one write of the whole frame; a short write (never seen on fbdev) continues where it stopped
    const go = (off: number) =>
      write(this.fd, frame.buf, off, len - off, off, (err, n) => {
        if (err) return finish(err);
        if (off + n < len && n > 0) return go(off + n);
        finish(null);
      });
    go(0);
  }

  /** Re-sends the frame on screen (the console may have drawn over it). */
  private rewrite(): void {
    if (this.writing || this.closed || !this.lastFront || this.pending) return;
    this.writeFrame(this.lastFront);
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
      this.draw({ screen: 'out_of_service', reason: 'service' }, frame);
      writeSync(this.fd, frame.buf, 0, frameBytes(this.geometry), 0);
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
