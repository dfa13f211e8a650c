import type { BitmapFont } from './font.js';

// An off-screen frame in the panel's own memory layout (pixel format, padded rows), drawn in
// LOGICAL coordinates: with rotation 90 a 800x480 panel is drawn as a 480x800 portrait screen
// and every primitive maps its pixels to where the panel shows them. The renderer draws into a
// Surface and writes its buffer to the framebuffer in one write.

export type Rotation = 0 | 90 | 180 | 270;
export const ROTATIONS: readonly Rotation[] = [0, 90, 180, 270];

/** Colour as 0xRRGGBB. */
export type Rgb = number;

export interface FbGeometry {
  /** visible pixels per row and rows, as the panel is mounted in the driver (before rotation) */
  width: number;
  height: number;
  /** 16 (RGB565), 24 (BGR888) or 32 (XRGB8888, bytes B G R X in memory) */
  bpp: 16 | 24 | 32;
  /** bytes per row, >= width * bpp / 8 (drivers pad rows) */
  stride: number;
}

export function frameBytes(g: FbGeometry): number {
  return g.stride * g.height;
}

function r8(c: Rgb): number {
  return (c >> 16) & 0xff;
}
function g8(c: Rgb): number {
  return (c >> 8) & 0xff;
}
function b8(c: Rgb): number {
  return c & 0xff;
}

export function mix(bg: Rgb, fg: Rgb, a: number): Rgb {
  // a: 0..255
  const ia = 255 - a;
  const r = (r8(fg) * a + r8(bg) * ia + 127) / 255;
  const g = (g8(fg) * a + g8(bg) * ia + 127) / 255;
  const b = (b8(fg) * a + b8(bg) * ia + 127) / 255;
  return ((r & 0xff) << 16) | ((g & 0xff) << 8) | (b & 0xff);
}

export class Surface {
  /** logical size (after rotation) */
  readonly width: number;
  readonly height: number;
  readonly buf: Buffer;
  private readonly Bpp: number;
  // device byte offset of logical (x, y) = base + x*sx + y*sy
  private readonly base: number;
  private readonly sx: number;
  private readonly sy: number;
  private readonly u16: Uint16Array | undefined;
  private readonly u32: Uint32Array | undefined;

  constructor(
    readonly geom: FbGeometry,
    readonly rotation: Rotation = 0,
    buf?: Buffer,
  ) {
    const { width: W, height: H, stride } = geom;
    this.Bpp = geom.bpp / 8;
    if (stride < W * this.Bpp) throw new Error(`stride ${stride} is shorter than a row of ${W} pixels at ${geom.bpp} bpp`);
    const portrait = rotation === 90 || rotation === 270;
    this.width = portrait ? H : W;
    this.height = portrait ? W : H;
    const n = frameBytes(geom);
    // own ArrayBuffer, offset 0: typed views for fast row fills need the alignment
    this.buf = buf ?? Buffer.from(new ArrayBuffer(n));
    if (this.buf.length < n) throw new Error(`frame buffer of ${this.buf.length} bytes is smaller than ${n}`);
    const B = this.Bpp;
    switch (rotation) {
      case 0:
        [this.base, this.sx, this.sy] = [0, B, stride];
        break;
      case 90: // clockwise: logical top-left is the panel's top-right
        [this.base, this.sx, this.sy] = [(W - 1) * B, stride, -B];
        break;
      case 180:
        [this.base, this.sx, this.sy] = [(H - 1) * stride + (W - 1) * B, -B, -stride];
        break;
      case 270:
        [this.base, this.sx, this.sy] = [(H - 1) * stride, -stride, B];
        break;
    }
    const ab = this.buf.buffer;
    const off = this.buf.byteOffset;
    if (geom.bpp === 16 && off % 2 === 0 && stride % 2 === 0) this.u16 = new Uint16Array(ab, off, n / 2);
    if (geom.bpp === 32 && off % 4 === 0 && stride % 4 === 0) this.u32 = new Uint32Array(ab, off, n / 4);
  }

  // ---- pixels ---------------------------------------------------------------------------------

  private write(o: number, c: Rgb): void {
    const b = this.buf;
    switch (this.Bpp) {
      case 2: {
        const v = ((r8(c) >> 3) << 11) | ((g8(c) >> 2) << 5) | (b8(c) >> 3);
        b[o] = v & 0xff;
        b[o + 1] = v >> 8;
        break;
      }
      case 3:
        b[o] = b8(c);
        b[o + 1] = g8(c);
        b[o + 2] = r8(c);
        break;
      default:
        b[o] = b8(c);
        b[o + 1] = g8(c);
        b[o + 2] = r8(c);
        b[o + 3] = 0xff;
    }
  }

  private read(o: number): Rgb {
    const b = this.buf;
    if (this.Bpp === 2) {
      const v = b[o]! | (b[o + 1]! << 8);
      const r = (v >> 11) & 0x1f;
      const g = (v >> 5) & 0x3f;
      const bl = v & 0x1f;
      return (((r << 3) | (r >> 2)) << 16) | (((g << 2) | (g >> 4)) << 8) | ((bl << 3) | (bl >> 2));
    }
    return (b[o + 2]! << 16) | (b[o + 1]! << 8) | b[o]!;
  }

  private offset(x: number, y: number): number {
    return this.base + x * this.sx + y * this.sy;
  }

  get(x: number, y: number): Rgb {
    return this.read(this.offset(x, y));
  }

  /** Blends one logical pixel with coverage a (0..255). */
  blend(x: number, y: number, c: Rgb, a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || a <= 0) return;
    const o = this.offset(x, y);
    this.write(o, a >= 255 ? c : mix(this.read(o), c, a));
  }

  // ---- rectangles -----------------------------------------------------------------------------

  fill(c: Rgb): void {
    this.fillRect(0, 0, this.width, this.height, c);
  }

  /** A logical rectangle, clipped to the surface, in device space (a rectangle stays a rectangle). */
  deviceRect(x: number, y: number, w: number, h: number): { dx: number; dy: number; dw: number; dh: number } | undefined {
    // clip in logical space
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    if (x1 <= x0 || y1 <= y0) return undefined;
    const { width: W, height: H } = this.geom;
    switch (this.rotation) {
      case 0:
        return { dx: x0, dy: y0, dw: x1 - x0, dh: y1 - y0 };
      case 90:
        return { dx: W - y1, dy: x0, dw: y1 - y0, dh: x1 - x0 };
      case 180:
        return { dx: W - x1, dy: H - y1, dw: x1 - x0, dh: y1 - y0 };
      case 270:
        return { dx: y0, dy: H - x1, dw: y1 - y0, dh: x1 - x0 };
    }
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const d = this.deviceRect(x, y, w, h);
    if (d) this.fillDevice(d.dx, d.dy, d.dw, d.dh, c);
  }

  /** Fills a rectangle given in device space (no clipping: the caller's rectangle is inside). */
  private fillDevice(x0: number, y0: number, dw: number, dh: number, c: Rgb): void {
    const stride = this.geom.stride;
    if (this.u32) {
      const v = (0xff000000 | c) >>> 0;
      const rowWords = stride / 4;
      for (let r = y0; r < y0 + dh; r++) this.u32.fill(v, r * rowWords + x0, r * rowWords + x0 + dw);
      return;
    }
    if (this.u16) {
      const v = ((r8(c) >> 3) << 11) | ((g8(c) >> 2) << 5) | (b8(c) >> 3);
      const rowWords = stride / 2;
      for (let r = y0; r < y0 + dh; r++) this.u16.fill(v, r * rowWords + x0, r * rowWords + x0 + dw);
      return;
    }
    // 24 bpp (or unaligned): the first row pixel by pixel, the others copied from it
    const B = this.Bpp;
    const first = y0 * stride + x0 * B;
    for (let i = 0; i < dw; i++) this.write(first + i * B, c);
    for (let r = y0 + 1; r < y0 + dh; r++) this.buf.copy(this.buf, r * stride + x0 * B, first, first + dw * B);
  }

  /** A filled rectangle with anti-aliased round corners of radius rad. */
  roundRect(x: number, y: number, w: number, h: number, rad: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    w = Math.round(w);
    h = Math.round(h);
    const r = Math.max(0, Math.min(Math.round(rad), Math.floor(w / 2), Math.floor(h / 2)));
    if (r === 0) return this.fillRect(x, y, w, h, c);
    this.fillRect(x + r, y, w - 2 * r, h, c);
    this.fillRect(x, y + r, r, h - 2 * r, c);
    this.fillRect(x + w - r, y + r, r, h - 2 * r, c);
    // corners: coverage of a circle of radius r centred r pixels in
    for (let j = 0; j < r; j++) {
      for (let i = 0; i < r; i++) {
        const dx = r - (i + 0.5);
        const dy = r - (j + 0.5);
        const a = coverage(r - Math.hypot(dx, dy));
        if (a <= 0) continue;
        this.blend(x + i, y + j, c, a);
        this.blend(x + w - 1 - i, y + j, c, a);
        this.blend(x + i, y + h - 1 - j, c, a);
        this.blend(x + w - 1 - i, y + h - 1 - j, c, a);
      }
    }
  }

  // ---- shapes for icons (signed distances, anti-aliased) ----------------------------------------

  /** A filled disc, or a ring when `ring` (line width) is given. */
  circle(cx: number, cy: number, rad: number, c: Rgb, ring?: number): void {
    const x0 = Math.floor(cx - rad - 1);
    const y0 = Math.floor(cy - rad - 1);
    const x1 = Math.ceil(cx + rad + 1);
    const y1 = Math.ceil(cy + rad + 1);
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
        const inside = ring === undefined ? rad - d : ring / 2 - Math.abs(d - (rad - ring / 2));
        const a = coverage(inside);
        if (a > 0) this.blend(x, y, c, a);
      }
    }
  }

  /** A thick line with round caps from (ax, ay) to (bx, by). */
  segment(ax: number, ay: number, bx: number, by: number, width: number, c: Rgb): void {
    const r = width / 2;
    const x0 = Math.floor(Math.min(ax, bx) - r - 1);
    const y0 = Math.floor(Math.min(ay, by) - r - 1);
    const x1 = Math.ceil(Math.max(ax, bx) + r + 1);
    const y1 = Math.ceil(Math.max(ay, by) + r + 1);
    const vx = bx - ax;
    const vy = by - ay;
    const len2 = vx * vx + vy * vy || 1;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5 - ax;
        const py = y + 0.5 - ay;
        const t = Math.max(0, Math.min(1, (px * vx + py * vy) / len2));
        const d = Math.hypot(px - t * vx, py - t * vy);
        const a = coverage(r - d);
        if (a > 0) this.blend(x, y, c, a);
      }
    }
  }

  // ---- text -----------------------------------------------------------------------------------

  /** Draws one line of text with its baseline at y; returns the pen's end x. */
  text(font: BitmapFont, s: string, x: number, baseline: number, size: number, c: Rgb): number {
    let pen = x;
    for (const ch of s) {
      const g = font.glyph(ch, size);
      const gx = Math.round(pen) + g.left;
      const gy = Math.round(baseline) + g.top;
      for (let j = 0; j < g.h; j++) {
        const py = gy + j;
        if (py < 0 || py >= this.height) continue;
        for (let i = 0; i < g.w; i++) {
          const a = g.alpha[j * g.w + i]!;
          if (a === 0) continue;
          const px = gx + i;
          if (px < 0 || px >= this.width) continue;
          const o = this.offset(px, py);
          this.write(o, a === 255 ? c : mix(this.read(o), c, a));
        }
      }
      pen += g.advance;
    }
    return pen;
  }

  /** Copies another surface's pixels (same geometry): the cached base of a screen. */
  copyFrom(other: Surface): void {
    other.buf.copy(this.buf, 0, 0, frameBytes(this.geom));
  }

  /** Copies a logical rectangle of another surface (same geometry and rotation), row by row. */
  copyRectFrom(other: Surface, x: number, y: number, w: number, h: number): void {
    const d = this.deviceRect(x, y, w, h);
    if (!d) return;
    const stride = this.geom.stride;
    const from = d.dx * this.Bpp;
    const to = (d.dx + d.dw) * this.Bpp;
    for (let r = d.dy; r < d.dy + d.dh; r++) other.buf.copy(this.buf, r * stride + from, r * stride + from, r * stride + to);
  }

  /** A logical rectangle's pixels, as the device stores them (rows one after another). */
  readRect(x: number, y: number, w: number, h: number): Buffer {
    const d = this.deviceRect(x, y, w, h);
    if (!d) return Buffer.alloc(0);
    const row = d.dw * this.Bpp;
    const out = Buffer.allocUnsafe(row * d.dh);
    for (let r = 0; r < d.dh; r++) this.buf.copy(out, r * row, (d.dy + r) * this.geom.stride + d.dx * this.Bpp, (d.dy + r) * this.geom.stride + d.dx * this.Bpp + row);
    return out;
  }

  /** Puts back pixels readRect() took from the same rectangle. */
  writeRect(x: number, y: number, w: number, h: number, px: Buffer): void {
    const d = this.deviceRect(x, y, w, h);
    if (!d) return;
    const row = d.dw * this.Bpp;
    if (px.length !== row * d.dh) throw new Error(`writeRect: ${px.length} bytes for a ${d.dw}x${d.dh} rectangle`);
    for (let r = 0; r < d.dh; r++) px.copy(this.buf, (d.dy + r) * this.geom.stride + d.dx * this.Bpp, r * row, (r + 1) * row);
  }

  /**
   * A square of n x n cells, each `cell` logical pixels, at logical (x, y): cell (row, col) is
   * `dark` when bits[row * n + col] is 1, else `light`. Every pixel of the square is written, so
   * nothing under it needs clearing first. Drawn in device space: each row of cells becomes one
   * device row of runs, copied to the cell's other rows, so a QR costs a few hundred fills and
   * copies instead of one fill per dark run and pixel row.
   */
  cellSquare(x: number, y: number, n: number, cell: number, bits: Uint8Array, dark: Rgb, light: Rgb): void {
    const side = n * cell;
    const d = this.deviceRect(x, y, side, side);
    if (!d) return;
    if (d.dw !== side || d.dh !== side || !Number.isInteger(x) || !Number.isInteger(y)) {
      // partly off the surface: cell by cell, clipped (never on a laid-out screen)
      for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) this.fillRect(x + c * cell, y + r * cell, cell, cell, bits[r * n + c] ? dark : light);
      return;
    }
    const dev = this.rotation === 0 ? bits : turnCells(bits, n, this.rotation);
    const stride = this.geom.stride;
    const rowStart = d.dx * this.Bpp;
    const rowEnd = (d.dx + side) * this.Bpp;
    for (let r = 0; r < n; r++) {
      const top = d.dy + r * cell;
      const row = r * n;
      let c = 0;
      while (c < n) {
        const v = dev[row + c];
        let run = 1;
        while (c + run < n && dev[row + c + run] === v) run++;
        this.fillDevice(d.dx + c * cell, top, run * cell, 1, v ? dark : light);
        c += run;
      }
      const first = top * stride;
      for (let k = 1; k < cell; k++) this.buf.copyWithin(first + k * stride + rowStart, first + rowStart, first + rowEnd);
    }
  }
}

/** An n x n cell grid as the device stores it: device cell (row, col) from the logical one (see Surface.deviceRect). */
function turnCells(bits: Uint8Array, n: number, rotation: 90 | 180 | 270): Uint8Array {
  const out = new Uint8Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      out[r * n + c] = rotation === 90 ? bits[(n - 1 - c) * n + r]! : rotation === 180 ? bits[(n - 1 - r) * n + (n - 1 - c)]! : bits[c * n + (n - 1 - r)]!;
    }
  }
  return out;
}

/** Signed distance inside the shape (px) -> coverage 0..255 over a 1-px wide edge. */
function coverage(inside: number): number {
  if (inside >= 0.5) return 255;
  if (inside <= -0.5) return 0;
  return Math.round((inside + 0.5) * 255);
}

// ---- reading frames back (tests, screenshots, a technician's "what is on the screen") ----------

/** The device buffer as RGBA pixels, in the panel's own orientation (width x height). */
export function frameToRgba(buf: Buffer, g: FbGeometry): Uint8Array {
  const out = new Uint8Array(g.width * g.height * 4);
  const s = new Surface(g, 0, buf);
  for (let y = 0; y < g.height; y++) {
    for (let x = 0; x < g.width; x++) {
      const c = s.get(x, y);
      const o = (y * g.width + x) * 4;
      out[o] = r8(c);
      out[o + 1] = g8(c);
      out[o + 2] = b8(c);
      out[o + 3] = 255;
    }
  }
  return out;
}

/** The device buffer as RGBA pixels the way a customer reads it (rotation undone). */
export function frameToLogicalRgba(buf: Buffer, g: FbGeometry, rotation: Rotation): { width: number; height: number; rgba: Uint8Array } {
  const s = new Surface(g, rotation, buf);
  const out = new Uint8Array(s.width * s.height * 4);
  for (let y = 0; y < s.height; y++) {
    for (let x = 0; x < s.width; x++) {
      const c = s.get(x, y);
      const o = (y * s.width + x) * 4;
      out[o] = r8(c);
      out[o + 1] = g8(c);
      out[o + 2] = b8(c);
      out[o + 3] = 255;
    }
  }
  return { width: s.width, height: s.height, rgba: out };
}
