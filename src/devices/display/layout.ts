import type { BitmapFont } from './font.js';
import { QUIET_ZONE, qrMatrix, type QrMatrix } from './qr.js';
import type { Rgb } from './surface.js';
import { URGENT_SECONDS, type Icon, type Tone, type View } from './view.js';

// Where everything goes on a panel of W x H logical pixels, as a list of drawing operations.
// Pure: no pixels are touched here, so tests check the geometry (nothing clipped, the QR never
// covered) and the painter stays a dumb loop. Sizes derive from the panel, then shrink until the
// screen fits: the same code lays out a 320x240 SPI panel and a 1080p monitor, either way up.

export const COLORS = {
  page: 0xffffff,
  ink: 0x141414,
  soft: 0x4a4f57,
  muted: 0x8a9099,
  line: 0xe3e6ea,
  brand: 0x0b3d91,
  accent: 0x009ee3,
  pill: 0xe6f3fc,
  urgent: 0xc62828,
  white: 0xffffff,
  soldOut: 0xb3261e,
  banner: 0xfff4e5,
  bannerInk: 0x7a4100,
  tone: { brand: 0x0b3d91, ok: 0x1e7e34, warn: 0xa85400, error: 0xb3261e, neutral: 0x37474f } satisfies Record<Tone, Rgb>,
} as const;

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export type Op =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; color: Rgb; radius?: number }
  | { kind: 'text'; role: string; text: string; x: number; y: number; size: number; color: Rgb }
  | { kind: 'qr'; x: number; y: number; module: number; matrix: QrMatrix }
  | { kind: 'icon'; icon: Icon; cx: number; cy: number; r: number; color: Rgb; bg: Rgb }
  | { kind: 'countdown'; x: number; y: number; w: number; h: number; size: number; radius: number };

export interface Layout {
  width: number;
  height: number;
  /** drawn once per screen */
  ops: Op[];
  /** drawn on every countdown tick, over a copy of the static frame */
  dynamic: Op[];
  /** every text line, the QR and the countdown, for tests and diagnostics */
  boxes: Array<Box & { role: string; text?: string }>;
  /** what did not fit (empty when all is well) */
  problems: string[];
}

/** Smallest text the layout will use, in px: below it a 320x240 panel is unreadable. */
export const MIN_TEXT = 10;

class Builder {
  ops: Op[] = [];
  dynamic: Op[] = [];
  boxes: Layout['boxes'] = [];
  problems: string[] = [];
  constructor(
    readonly font: BitmapFont,
    readonly W: number,
    readonly H: number,
  ) {}

  rect(x: number, y: number, w: number, h: number, color: Rgb, radius?: number): void {
    this.ops.push({ kind: 'rect', x, y, w, h, color, ...(radius ? { radius } : {}) });
  }

  /** One line of text in a column [x, x+w); returns the line height. */
  line(role: string, text: string, x: number, y: number, w: number, size: number, color: Rgb, align: 'left' | 'center' | 'right' = 'left'): number {
    const tw = this.font.measure(text, size);
    const tx = align === 'left' ? x : align === 'center' ? x + Math.floor((w - tw) / 2) : x + w - tw;
    const h = this.font.lineHeight(size);
    this.ops.push({ kind: 'text', role, text, x: tx, y, size, color });
    this.boxes.push({ role, text, x: tx, y, w: tw, h });
    return h;
  }

  layout(): Layout {
    return { width: this.W, height: this.H, ops: this.ops, dynamic: this.dynamic, boxes: this.boxes, problems: this.problems };
  }
}

/** Largest size <= max (and >= min) at which text fits width; min if none does. */
function fitSize(font: BitmapFont, text: string, width: number, max: number, min = MIN_TEXT): number {
  let s = Math.floor(max);
  while (s > min && font.measure(text, s) > width) s--;
  return Math.max(min, s);
}

/** A paragraph wrapped to at most maxLines (the last cut with "…"). */
function para(font: BitmapFont, text: string, size: number, width: number, maxLines: number): string[] {
  const lines = font.wrap(text, size, width);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  kept[maxLines - 1] = font.ellipsize(`${kept[maxLines - 1]} ${lines.slice(maxLines).join(' ')}`, size, width);
  return kept;
}

export function layoutView(v: View, W: number, H: number, font: BitmapFont): Layout {
  const b = new Builder(font, W, H);
  switch (v.screen) {
    case 'pay':
      payLayout(b, v);
      break;
    case 'idle':
      idleLayout(b, v);
      break;
    default:
      resultLayout(b, v);
  }
  return b.layout();
}

// ---- pay ------------------------------------------------------------------------------------------

interface PayBlock {
  role: string;
  lines: string[];
  size: number;
  color: Rgb;
  gapAfter: number;
}

function payLayout(b: Builder, v: View): void {
  const { W, H, font } = b;
  const u = Math.min(W, H);
  const m = Math.max(6, Math.round(u * 0.04));
  const landscape = W >= H * 1.05;
  b.rect(0, 0, W, H, COLORS.page);
  const bar = Math.max(3, Math.round(u * 0.015));
  b.rect(0, 0, W, bar, COLORS.accent);

  // the QR first: it must never be clipped or covered. Its quiet zone is page-white, so it
  // doubles as the margin on its sides.
  const matrix = v.qr ? qrMatrix(v.qr) : undefined;
  if (!matrix) {
    payColumn(b, v, { x: m, y: bar + m, w: W - 2 * m, h: H - bar - 2 * m }, 'left', landscape);
    return;
  }
  const n = matrix.size + 2 * QUIET_ZONE;
  const maxSide = landscape ? Math.min(H - bar, Math.floor(W * 0.58)) : Math.min(W, Math.floor(H * 0.56));
  const module = Math.floor(maxSide / n);
  if (module < 1) {
    b.problems.push(`the QR (${matrix.size} modules + quiet zone) does not fit ${maxSide} px`);
    payColumn(b, v, { x: m, y: bar + m, w: W - 2 * m, h: H - bar - 2 * m }, 'left', landscape);
    return;
  }
  const side = module * n;
  const pad = Math.max(0, m - module * QUIET_ZONE); // extra margin when the quiet zone is thinner than m
  if (landscape) {
    const qr = { x: W - side - pad, y: bar + Math.floor((H - bar - side) / 2), w: side, h: side };
    placeQr(b, qr, module, matrix);
    payColumn(b, v, { x: m, y: bar + m, w: qr.x - m, h: H - bar - 2 * m }, 'left', landscape);
    return;
  }
  // portrait: product and price above the QR, the steps and the countdown under it
  const colW = W - 2 * m;
  const aboveMax = Math.max(0, H - side - bar - m - Math.round(H * 0.16));
  let productSize = MIN_TEXT;
  let priceSize = MIN_TEXT;
  let productLines: string[] = [];
  for (let k = 1; k >= 0.3; k *= 0.9) {
    productSize = Math.max(MIN_TEXT, Math.round(u * 0.075 * k));
    priceSize = fitSize(font, v.price ?? '', colW, Math.max(MIN_TEXT, Math.round(u * 0.15 * k)));
    productLines = v.product ? para(font, v.product, productSize, colW, 2) : [];
    const h = productLines.length * font.lineHeight(productSize) + (v.price ? font.lineHeight(priceSize) : 0);
    if (h <= aboveMax) break;
  }
  let y = bar + Math.round(m / 2);
  for (const l of productLines) y += b.line('product', l, m, y, colW, productSize, COLORS.ink, 'center');
  if (v.price) y += b.line('price', v.price, m, y, colW, priceSize, COLORS.ink, 'center');
  const qr = { x: Math.floor((W - side) / 2), y, w: side, h: side };
  placeQr(b, qr, module, matrix);
  const below = qr.y + side;
  const rest: View = { ...v, title: '' };
  delete rest.product;
  delete rest.price;
  payColumn(b, rest, { x: m, y: below, w: colW, h: H - below - Math.round(m / 2) }, 'center', landscape);
}

function placeQr(b: Builder, box: Box, module: number, matrix: QrMatrix): void {
  b.ops.push({ kind: 'qr', x: box.x, y: box.y, module, matrix });
  b.boxes.push({ role: 'qr', ...box });
}

function widestCountdown(text: string): string {
  return text.replace(/\d+/, '888');
}

function pillPad(font: BitmapFont, size: number): number {
  return Math.round(font.lineHeight(size) * 1.35 * 0.9);
}

/** The countdown's size: as asked, or smaller so the widest countdown fits the column. */
function countdownSize(font: BitmapFont, text: string | undefined, width: number, max: number): number {
  if (text === undefined) return 0;
  let s = Math.floor(max);
  while (s > MIN_TEXT && font.measure(widestCountdown(text), s) + pillPad(font, s) > width) s--;
  return s;
}

/** The pay screen's text in a column: sizes shrink, then less important lines go, until it fits. */
function payColumn(b: Builder, v: View, col: Box, align: 'left' | 'center', landscape: boolean): void {
  const { font } = b;
  const unit = landscape ? b.H : Math.min(b.W, b.H * 0.62);
  const base = { title: 0.065, product: 0.085, price: 0.16, steps: 0.058, count: 0.07, hint: 0.042 };
  const stepText = (v.steps ?? []).map((s, i) => `${i + 1}. ${s}`);
  let chosen: { blocks: PayBlock[]; k: number; hint: boolean; countSize: number } | undefined;
  // stage 0: everything; 1: no hint; 2: no title; 3: the steps as one line
  for (const stage of [0, 1, 2, 3]) {
    for (let k = 1; k >= 0.3 && !chosen; k *= 0.93) {
      const sz = (f: number, min = MIN_TEXT) => Math.max(min, Math.round(unit * f * k));
      const blocks: PayBlock[] = [];
      const gap = Math.max(2, Math.round(sz(base.steps) * 0.35));
      if (v.title && stage < 2) {
        const ts = fitSize(font, v.title, col.w, sz(base.title));
        blocks.push({ role: 'title', lines: para(font, v.title, ts, col.w, 2), size: ts, color: COLORS.brand, gapAfter: gap });
      }
      if (v.product) blocks.push({ role: 'product', lines: para(font, v.product, sz(base.product), col.w, 2), size: sz(base.product), color: COLORS.ink, gapAfter: 0 });
      if (v.price) blocks.push({ role: 'price', lines: [v.price], size: fitSize(font, v.price, col.w, sz(base.price, 14)), color: COLORS.ink, gapAfter: gap * 2 });
      const ss = sz(base.steps);
      if (stage < 3) {
        stepText.forEach((s, i) => blocks.push({ role: 'step', lines: para(font, s, ss, col.w, 3), size: ss, color: COLORS.soft, gapAfter: i < stepText.length - 1 ? Math.round(gap / 2) : gap }));
      } else if (v.steps?.length) {
        blocks.push({ role: 'step', lines: para(font, v.steps.join(' · '), ss, col.w, 3), size: ss, color: COLORS.soft, gapAfter: gap });
      }
      const hint = stage === 0 && !!v.hint;
      const countSize = countdownSize(font, v.countdown, col.w, sz(base.count));
      const countH = countSize ? Math.round(font.lineHeight(countSize) * 1.35) : 0;
      const hintH = hint ? font.lineHeight(sz(base.hint)) + gap : 0;
      const h = blocks.reduce((a, bl) => a + bl.lines.length * font.lineHeight(bl.size) + bl.gapAfter, 0) + countH + hintH;
      const price = blocks.find((x) => x.role === 'price');
      const priceFits = !price || font.measure(v.price!, price.size) <= col.w;
      if (h <= col.h && priceFits) chosen = { blocks, k, hint, countSize };
    }
    if (chosen) break;
  }
  if (!chosen) {
    b.problems.push('the pay screen text does not fit beside the QR');
    return;
  }
  const { blocks, k, hint, countSize } = chosen;
  const sz = (f: number) => Math.max(MIN_TEXT, Math.round(unit * f * k));
  let y = col.y;
  for (const bl of blocks) {
    for (const l of bl.lines) y += b.line(bl.role, l, col.x, y, col.w, bl.size, bl.color, align);
    y += bl.gapAfter;
  }
  // the hint at the bottom of the column, the countdown above it
  let bottom = col.y + col.h;
  if (hint && v.hint) {
    const hs = sz(base.hint);
    bottom -= font.lineHeight(hs);
    b.line('hint', font.ellipsize(v.hint, hs, col.w), col.x, bottom, col.w, hs, COLORS.muted, align);
    bottom -= Math.max(2, Math.round(font.lineHeight(hs) * 0.3));
  }
  if (v.countdown !== undefined && countSize) {
    const size = countSize;
    const ch = Math.round(font.lineHeight(size) * 1.35);
    // wide enough for any countdown this language prints, so a tick never moves anything
    const cw = Math.min(col.w, font.measure(widestCountdown(v.countdown), size) + pillPad(font, size));
    const cx = align === 'center' ? col.x + Math.floor((col.w - cw) / 2) : col.x;
    const cy = Math.max(y, bottom - ch);
    b.dynamic.push({ kind: 'countdown', x: cx, y: cy, w: cw, h: ch, size, radius: Math.round(ch / 2) });
    b.boxes.push({ role: 'countdown', x: cx, y: cy, w: cw, h: ch });
  }
}

// ---- idle -----------------------------------------------------------------------------------------

function idleLayout(b: Builder, v: View): void {
  const { W, H, font } = b;
  const u = Math.min(W, H);
  const m = Math.max(6, Math.round(u * 0.04));
  b.rect(0, 0, W, H, COLORS.page);
  // header
  const titleSize = fitSize(font, v.title, W - 2 * m, Math.round(u * 0.1), 12);
  const hintSize = Math.max(MIN_TEXT, Math.round(u * 0.045));
  const hintLines = para(font, v.body[0] ?? '', hintSize, W - 2 * m, 2);
  const headerH = m + font.lineHeight(titleSize) + hintLines.length * font.lineHeight(hintSize) + Math.round(m * 0.8);
  b.rect(0, 0, W, headerH, COLORS.brand);
  let y = m;
  y += b.line('title', v.title, m, y, W - 2 * m, titleSize, COLORS.white);
  for (const l of hintLines) y += b.line('hint', l, m, y, W - 2 * m, hintSize, 0xcfe3ff);

  // banner at the bottom
  let bottom = H;
  if (v.banner) {
    const bs = Math.max(12, Math.round(u * 0.065));
    const lines = para(font, v.banner, bs, W - 2 * m, 2);
    const bh = lines.length * font.lineHeight(bs) + m;
    bottom = H - bh;
    b.rect(0, bottom, W, bh, COLORS.banner);
    let by = bottom + Math.round(m / 2);
    for (const l of lines) by += b.line('banner', l, m, by, W - 2 * m, bs, COLORS.bannerInk, 'center');
  }

  // the menu: one row per product, in as many columns as needed
  const products = v.products ?? [];
  const top = headerH + Math.round(m * 0.6);
  const avail = bottom - top - Math.round(m * 0.4);
  if (products.length === 0) return;
  const maxCols = W >= H ? (W >= 640 ? 3 : 2) : 1;
  let cols = 1;
  let rowH = 0;
  for (cols = 1; cols <= maxCols; cols++) {
    const rows = Math.ceil(products.length / cols);
    rowH = Math.floor(avail / rows);
    if (rowH >= Math.max(MIN_TEXT * 1.9, u * 0.11)) break;
  }
  cols = Math.min(cols, maxCols);
  let rows = Math.ceil(products.length / cols);
  rowH = Math.min(Math.floor(avail / rows), Math.round(u * 0.16));
  let shown = products;
  const minRow = Math.ceil(MIN_TEXT * 1.9);
  if (rowH < minRow) {
    rows = Math.max(1, Math.floor(avail / minRow));
    rowH = minRow;
    shown = products.slice(0, rows * cols);
    if (shown.length < products.length) b.problems.push(`${products.length - shown.length} products do not fit the menu`);
  }
  const colGap = m;
  const colW = Math.floor((W - 2 * m - (cols - 1) * colGap) / cols);
  const size = Math.max(MIN_TEXT, Math.round(rowH * 0.42));
  const noteSize = Math.max(MIN_TEXT, Math.round(size * 0.75));
  shown.forEach((p, i) => {
    const c = Math.floor(i / rows);
    const r = i % rows;
    const x = m + c * (colW + colGap);
    const ry = top + r * rowH;
    const lh = font.lineHeight(size);
    const ty = ry + Math.floor((rowH - lh) / 2);
    // slot badge
    const badge = Math.round(lh * 1.05);
    const badgeY = ry + Math.floor((rowH - badge) / 2);
    b.rect(x, badgeY, badge, badge, p.available ? COLORS.accent : COLORS.line, Math.round(badge * 0.22));
    const slot = String(p.slot);
    const ss = fitSize(font, slot, badge - 4, Math.round(size * 0.95), MIN_TEXT);
    b.line('slot', slot, x, badgeY + Math.floor((badge - font.lineHeight(ss)) / 2), badge, ss, p.available ? COLORS.white : COLORS.muted, 'center');
    // price (or sold out) on the right, a small "quedan 2" after the price, the name in what is left
    const rightText = p.available ? (p.price ?? '') : (p.note ?? '');
    const rightSize = p.available ? size : noteSize;
    const extra = p.available && p.note ? p.note : '';
    const extraSize = Math.max(MIN_TEXT, Math.round(size * 0.6));
    const gap = Math.round(m * 0.4);
    const ew = extra ? font.measure(extra, extraSize) + gap : 0;
    const rw = rightText ? font.measure(rightText, rightSize) : 0;
    const nameX = x + badge + Math.round(m * 0.6);
    const nameW = Math.max(0, x + colW - ew - rw - Math.round(m * 0.6) - nameX);
    b.line('name', font.ellipsize(p.name, size, nameW), nameX, ty, nameW, size, p.available ? COLORS.ink : COLORS.muted);
    if (rightText) {
      const ry2 = ty + Math.floor((lh - font.lineHeight(rightSize)) / 2);
      b.line(p.available ? 'price' : 'note', rightText, x, ry2, colW - ew, rightSize, p.available ? COLORS.ink : COLORS.soldOut, 'right');
    }
    if (extra) {
      // on the price's baseline
      const ey = ty + font.ascent(size) - font.ascent(extraSize);
      b.line('note', extra, x, ey, colW, extraSize, COLORS.soldOut, 'right');
    }
    if (r < rows - 1) b.rect(x, ry + rowH - 1, colW, 1, COLORS.line);
  });
}

// ---- result and status screens --------------------------------------------------------------------

function resultLayout(b: Builder, v: View): void {
  const { W, H, font } = b;
  const u = Math.min(W, H);
  const m = Math.max(8, Math.round(u * 0.06));
  const bg = COLORS.tone[v.tone];
  b.rect(0, 0, W, H, bg);
  const colW = W - 2 * m;
  for (let k = 1; k >= 0.3; k *= 0.9) {
    const iconR = v.icon ? Math.round(u * 0.13 * k) : 0;
    const titleSize = Math.max(MIN_TEXT + 2, Math.round(u * 0.11 * k));
    const bodySize = Math.max(MIN_TEXT, Math.round(u * 0.06 * k));
    const refSize = Math.max(MIN_TEXT, Math.round(u * 0.048 * k));
    const title = para(font, v.title, titleSize, colW, 3);
    const body = v.body.flatMap((l) => para(font, l, bodySize, colW, 3));
    const banner = v.banner ? para(font, v.banner, bodySize, colW, 2) : [];
    const gap = Math.round(m * 0.45 * k);
    const h =
      (iconR ? 2 * iconR + gap : 0) +
      title.length * font.lineHeight(titleSize) +
      gap +
      (body.length + banner.length) * font.lineHeight(bodySize) +
      (v.reference ? gap + font.lineHeight(refSize) : 0);
    if (h > H - 2 * m && k * 0.9 >= 0.3) continue;
    let y = Math.max(m, Math.floor((H - h) / 2));
    if (iconR) {
      b.ops.push({ kind: 'icon', icon: v.icon!, cx: W / 2, cy: y + iconR, r: iconR, color: bg, bg: COLORS.white });
      b.boxes.push({ role: 'icon', x: Math.round(W / 2 - iconR), y, w: 2 * iconR, h: 2 * iconR });
      y += 2 * iconR + gap;
    }
    for (const l of title) y += b.line('title', l, m, y, colW, titleSize, COLORS.white, 'center');
    y += gap;
    for (const l of body) y += b.line('body', l, m, y, colW, bodySize, COLORS.white, 'center');
    for (const l of banner) y += b.line('banner', l, m, y, colW, bodySize, COLORS.white, 'center');
    if (v.reference) {
      y += gap;
      b.line('reference', font.ellipsize(v.reference, refSize, colW), m, y, colW, refSize, 0xf1f1f1, 'center');
    }
    if (h > H - 2 * m) b.problems.push('the screen text does not fit');
    return;
  }
}

/** True when two boxes overlap. */
export function overlaps(a: Box, c: Box): boolean {
  return a.x < c.x + c.w && c.x < a.x + a.w && a.y < c.y + c.h && c.y < a.y + a.h;
}

export const urgent = (seconds: number | undefined): boolean => seconds !== undefined && seconds <= URGENT_SECONDS;
