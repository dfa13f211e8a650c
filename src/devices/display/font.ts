import { inflateSync } from 'node:zlib';

// The framebuffer renderer's text. One bitmap font (1 bit per pixel, drawn large: see
// ../fonts/generate.mjs) is scaled to any pixel size with an exact area filter, so small text is
// anti-aliased and large text (a price across a 1080p panel) stays sharp. Scaled glyphs are
// cached per size: after the first frame of a screen, text costs a table look-up and a blend.

export interface FontData {
  name: string;
  /** pixels per em of the master bitmaps */
  size: number;
  ascent: number;
  descent: number;
  /** per glyph: code point, advance (1/16 px), left, top (negative = above the baseline), width, height */
  metrics: number[];
  /** all glyph rows, 1 bit per pixel, MSB first, deflated, base64 */
  bitmap: string;
}

interface Master {
  advance: number;
  left: number;
  top: number;
  w: number;
  h: number;
  /** where its rows start in the font's bitmap, in bits */
  bit: number;
  /** summed-area table, (w+1) x (h+1); made when the glyph is first scaled (most never are) */
  sat?: Uint16Array | Uint32Array;
}

/** A glyph at one pixel size: coverage 0..255, placed relative to the pen on the baseline. */
export interface Glyph {
  advance: number;
  left: number;
  top: number;
  w: number;
  h: number;
  alpha: Uint8Array;
}

const FALLBACK = 0x3f; // '?'

/** Characters the font lacks are mapped to a near equivalent before falling back to '?'. */
const SUBSTITUTES: Record<string, string> = {
  '\u00a0': ' ',
  '\u2009': ' ',
  '\u202f': ' ',
  '\u2212': '-',
  '\u2010': '-',
  '\u2011': '-',
};

export class BitmapFont {
  readonly name: string;
  private readonly masters = new Map<number, Master>();
  private readonly cache = new Map<string, Glyph>();
  private readonly masterSize: number;
  /** every glyph's rows, 1 bit per pixel (38 KB) */
  private readonly bits: Buffer;
  private readonly ascentM: number;
  private readonly descentM: number;

  constructor(data: FontData) {
    this.name = data.name;
    this.masterSize = data.size;
    this.ascentM = data.ascent;
    this.descentM = data.descent;
    this.bits = inflateSync(Buffer.from(data.bitmap, 'base64'));
    let bit = 0;
    const m = data.metrics;
    for (let i = 0; i + 5 < m.length; i += 6) {
      const [code, adv16, left, top, w, h] = [m[i]!, m[i + 1]!, m[i + 2]!, m[i + 3]!, m[i + 4]!, m[i + 5]!];
      this.masters.set(code, { advance: adv16 / 16, left, top, w, h, bit });
      bit += w * h;
    }
  }

  /** The master's summed-area table, made on first use: all 200 of them would hold 2.5 MB. */
  private sat(m: Master): Uint16Array | Uint32Array {
    if (m.sat) return m.sat;
    const { w, h } = m;
    const bits = this.bits;
    // at most w*h ink pixels per glyph (< 65536 at 128 px): 16 bits per entry are enough
    const sat = w * h < 65536 ? new Uint16Array((w + 1) * (h + 1)) : new Uint32Array((w + 1) * (h + 1));
    let bit = m.bit;
    for (let y = 0; y < h; y++) {
      let row = 0;
      for (let x = 0; x < w; x++) {
        row += (bits[bit >> 3]! >> (7 - (bit & 7))) & 1;
        bit++;
        sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1]! + row;
      }
    }
    m.sat = sat;
    return sat;
  }

  has(ch: string): boolean {
    return this.masters.has(ch.codePointAt(0)!) || SUBSTITUTES[ch] !== undefined;
  }

  private master(ch: string): Master {
    const code = ch.codePointAt(0)!;
    return this.masters.get(code) ?? this.masters.get(SUBSTITUTES[ch]?.codePointAt(0) ?? FALLBACK) ?? this.masters.get(FALLBACK)!;
  }

  /** Distance from the top of a line box to the baseline, for a font size in px. */
  ascent(size: number): number {
    return Math.round((this.ascentM * size) / this.masterSize);
  }

  /** Height of a line box (ascent + descent) for a font size in px. */
  lineHeight(size: number): number {
    return Math.round(((this.ascentM + this.descentM) * size) / this.masterSize);
  }

  /** Width in px of a single-line text at a size, as drawn. */
  measure(text: string, size: number): number {
    const k = size / this.masterSize;
    let pen = 0;
    for (const ch of text) pen += this.master(ch).advance * k;
    return Math.ceil(pen);
  }

  /** The glyph for a character at a size (cached). */
  glyph(ch: string, size: number): Glyph {
    const key = `${size}:${ch}`;
    let g = this.cache.get(key);
    if (g) return g;
    if (this.cache.size > 4000) this.cache.clear();
    g = this.scale(this.master(ch), size);
    this.cache.set(key, g);
    return g;
  }

  /**
   * Area-filtered scaling: each output pixel's coverage is the exact fraction of its square (mapped
   * onto the master) covered by ink, from the summed-area table (whose bilinear interpolation is
   * exact for a piecewise-constant image).
   */
  private scale(m: Master, size: number): Glyph {
    const k = size / this.masterSize;
    const advance = m.advance * k;
    if (m.w === 0 || m.h === 0) return { advance, left: 0, top: 0, w: 0, h: 0, alpha: new Uint8Array(0) };
    const fx0 = m.left * k;
    const fy0 = m.top * k;
    const left = Math.floor(fx0);
    const top = Math.floor(fy0);
    const w = Math.ceil(fx0 + m.w * k) - left;
    const h = Math.ceil(fy0 + m.h * k) - top;
    const alpha = new Uint8Array(w * h);
    const sw = m.w + 1;
    const sat = this.sat(m);
    const at = (x: number, y: number): number => {
      // integral of ink over [0,x) x [0,y) of the master, x/y fractional and clamped
      if (x <= 0 || y <= 0) return 0;
      if (x > m.w) x = m.w;
      if (y > m.h) y = m.h;
      const xi = Math.floor(x);
      const yi = Math.floor(y);
      const tx = x - xi;
      const ty = y - yi;
      const xj = xi < m.w ? xi + 1 : xi;
      const yj = yi < m.h ? yi + 1 : yi;
      const a = sat[yi * sw + xi]!;
      const b = sat[yi * sw + xj]!;
      const c = sat[yj * sw + xi]!;
      const d = sat[yj * sw + xj]!;
      return a * (1 - tx) * (1 - ty) + b * tx * (1 - ty) + c * (1 - tx) * ty + d * tx * ty;
    };
    const inv = 1 / k;
    const area = inv * inv;
    for (let y = 0; y < h; y++) {
      const my0 = (top + y - fy0) * inv;
      const my1 = my0 + inv;
      for (let x = 0; x < w; x++) {
        const mx0 = (left + x - fx0) * inv;
        const mx1 = mx0 + inv;
        const ink = at(mx1, my1) - at(mx0, my1) - at(mx1, my0) + at(mx0, my0);
        const v = Math.round((ink / area) * 255);
        alpha[y * w + x] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    return { advance, left, top, w, h, alpha };
  }

  /**
   * Splits text into lines no wider than maxWidth at a size, breaking at spaces; a word longer
   * than a line is cut with a hyphen-less break.
   */
  wrap(text: string, size: number, maxWidth: number): string[] {
    const lines: string[] = [];
    for (const para of text.split('\n')) {
      let line = '';
      for (const word of para.split(/\s+/).filter(Boolean)) {
        const candidate = line ? `${line} ${word}` : word;
        if (this.measure(candidate, size) <= maxWidth) {
          line = candidate;
          continue;
        }
        if (line) lines.push(line);
        line = '';
        let rest = word;
        while (this.measure(rest, size) > maxWidth) {
          let n = rest.length - 1;
          while (n > 1 && this.measure(rest.slice(0, n), size) > maxWidth) n--;
          lines.push(rest.slice(0, n));
          rest = rest.slice(n);
        }
        line = rest;
      }
      if (line) lines.push(line);
    }
    return lines;
  }

  /** The text cut to fit maxWidth, ending in "…" when cut. */
  ellipsize(text: string, size: number, maxWidth: number): string {
    if (this.measure(text, size) <= maxWidth) return text;
    let n = text.length;
    while (n > 0 && this.measure(`${text.slice(0, n).trimEnd()}…`, size) > maxWidth) n--;
    return `${text.slice(0, n).trimEnd()}…`;
  }
}
