import type { BitmapFont } from './font.js';
import { COLORS, urgent, type Layout, type Op } from './layout.js';
import { QUIET_ZONE, type QrMatrix } from './qr.js';
import type { Icon } from './view.js';
import type { Rgb, Surface } from './surface.js';

// Executes a Layout on a Surface. The static part is painted once per screen; the countdown is
// painted over a copy of it on every tick.
//
// The framebuffer splits the static part in two: everything but the QR's dark modules (the
// "plain" frame, painted only when the product, price or texts change) and the modules, painted
// on every frame over a copy of it. Successive orders for the same product then cost a copy and
// the QR, not the text and shapes again. A QR's quiet zone is opaque white and nothing may be
// drawn over a QR (it would not scan), so painting its modules last gives the same pixels.

export function paintStatic(layout: Layout, s: Surface, font: BitmapFont, opts: { qrModules?: boolean } = {}): void {
  for (const op of layout.ops) paintOp(op, s, font, opts.qrModules ?? true);
}

/** The QR (its whole square), over a frame painted with paintStatic(..., { qrModules: false }). */
export function paintQrModules(layout: Layout, s: Surface): void {
  for (const op of layout.ops) if (op.kind === 'qr') qrModules(op, s);
}

/**
 * What paintStatic(..., { qrModules: false }) paints, as a string: equal keys, equal pixels. The
 * QR contributes only its white square (position and size), not its modules.
 */
export function plainKey(layout: Layout): string {
  return JSON.stringify(layout.ops, (k, v: unknown) => (k === 'matrix' ? (v as QrMatrix).size : v));
}

/** A matrix with its quiet zone as light cells, made once per matrix. */
const withQuietZone = new WeakMap<QrMatrix, Uint8Array>();

function quietZoned(m: QrMatrix): Uint8Array {
  let bits = withQuietZone.get(m);
  if (!bits) {
    const n = m.size + 2 * QUIET_ZONE;
    bits = new Uint8Array(n * n);
    for (let r = 0; r < m.size; r++) bits.set(m.dark.subarray(r * m.size, (r + 1) * m.size), (r + QUIET_ZONE) * n + QUIET_ZONE);
    withQuietZone.set(m, bits);
  }
  return bits;
}

/** The whole QR square, quiet zone included, light modules too (nothing under it needs clearing). */
function qrModules(op: Extract<Op, { kind: 'qr' }>, s: Surface): void {
  s.cellSquare(op.x, op.y, op.matrix.size + 2 * QUIET_ZONE, op.module, quietZoned(op.matrix), 0x000000, COLORS.white);
}

export function paintDynamic(layout: Layout, s: Surface, font: BitmapFont, countdown: { text: string; seconds: number } | undefined): void {
  if (!countdown) return;
  for (const op of layout.dynamic) {
    if (op.kind !== 'countdown') continue;
    const hot = urgent(countdown.seconds);
    s.roundRect(op.x, op.y, op.w, op.h, op.radius, hot ? COLORS.urgent : COLORS.pill);
    const text = font.ellipsize(countdown.text, op.size, op.w - op.radius);
    const tw = font.measure(text, op.size);
    const top = op.y + Math.floor((op.h - font.lineHeight(op.size)) / 2);
    s.text(font, text, op.x + Math.floor((op.w - tw) / 2), top + font.ascent(op.size), op.size, hot ? COLORS.white : COLORS.brand);
  }
}

function paintOp(op: Op, s: Surface, font: BitmapFont, withQrModules: boolean): void {
  switch (op.kind) {
    case 'rect':
      if (op.radius) s.roundRect(op.x, op.y, op.w, op.h, op.radius, op.color);
      else s.fillRect(op.x, op.y, op.w, op.h, op.color);
      return;
    case 'text':
      s.text(font, op.text, op.x, op.y + font.ascent(op.size), op.size, op.color);
      return;
    case 'qr': {
      const side = (op.matrix.size + 2 * QUIET_ZONE) * op.module;
      s.fillRect(op.x, op.y, side, side, COLORS.white);
      if (withQrModules) qrModules(op, s);
      return;
    }
    case 'icon':
      drawIcon(s, op.icon, op.cx, op.cy, op.r, op.color, op.bg);
      return;
    case 'countdown':
      return;
  }
}

function drawIcon(s: Surface, icon: Icon, cx: number, cy: number, r: number, color: Rgb, bg: Rgb): void {
  s.circle(cx, cy, r, bg);
  const w = Math.max(2, r * 0.17);
  const seg = (ax: number, ay: number, bx: number, by: number, width = w) => s.segment(cx + ax * r, cy + ay * r, cx + bx * r, cy + by * r, width, color);
  switch (icon) {
    case 'check':
      seg(-0.42, 0.02, -0.12, 0.32);
      seg(-0.12, 0.32, 0.45, -0.3);
      return;
    case 'cross':
      seg(-0.33, -0.33, 0.33, 0.33);
      seg(-0.33, 0.33, 0.33, -0.33);
      return;
    case 'clock':
      s.circle(cx, cy, r * 0.62, color, Math.max(2, r * 0.12));
      seg(0, 0, 0, -0.38, w * 0.8);
      seg(0, 0, 0.28, 0, w * 0.8);
      return;
    case 'arrow':
      seg(0, -0.45, 0, 0.38);
      seg(-0.3, 0.1, 0, 0.4);
      seg(0.3, 0.1, 0, 0.4);
      return;
    case 'bang':
      seg(0, -0.45, 0, 0.1, w * 1.1);
      s.circle(cx, cy + 0.36 * r, w * 0.65, color);
      return;
    case 'wrench':
      seg(-0.4, 0.4, 0.1, -0.1, w * 1.1);
      s.circle(cx + 0.22 * r, cy - 0.22 * r, r * 0.25, color, Math.max(2, r * 0.13));
      return;
  }
}
