import { create } from 'qrcode/lib/core/qrcode.js';

// One QR encoder for every renderer: the `qrcode` module's matrix at error correction level M
// (what Mercado Pago's printed stickers use; its encoder alone, see qrcode-core.d.ts). Encoding a
// long payload takes a few milliseconds, so the last few matrices are kept: the static POS QR of
// the unattended model is encoded once.

export interface QrMatrix {
  /** modules per side, without quiet zone */
  size: number;
  /** size*size, 1 = dark, row major */
  dark: Uint8Array;
}

/** Light modules around the code, as the QR standard asks (4). */
export const QUIET_ZONE = 4;

const cache = new Map<string, QrMatrix>();
const CACHE_MAX = 8;

export function qrMatrix(payload: string): QrMatrix {
  const hit = cache.get(payload);
  if (hit) {
    // refresh its place (Map keeps insertion order: the first key is the oldest)
    cache.delete(payload);
    cache.set(payload, hit);
    return hit;
  }
  const m = create(payload, { errorCorrectionLevel: 'M' }).modules;
  // qrcode's BitMatrix already is this: size*size bytes, row major, 1 = dark (set and xor'ed
  // with 0/1 only); taken as is rather than read back module by module through get()
  const q = { size: m.size, dark: m.data };
  cache.set(payload, q);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return q;
}

/** Forget cached matrices (benchmarks measure the cold path with it). */
export function clearQrCache(): void {
  cache.clear();
}

/**
 * The QR as an SVG document: one path of unit squares on a white field that includes the quiet
 * zone, drawn with crisp edges. The viewBox is in modules; the page sizes it to a whole number
 * of pixels per module.
 */
export function qrSvg(payload: string): string {
  const { size, dark } = qrMatrix(payload);
  const total = size + 2 * QUIET_ZONE;
  let d = '';
  for (let r = 0; r < size; r++) {
    let c = 0;
    while (c < size) {
      if (!dark[r * size + c]) {
        c++;
        continue;
      }
      let run = 1;
      while (c + run < size && dark[r * size + c + run]) run++;
      d += `M${c + QUIET_ZONE} ${r + QUIET_ZONE}h${run}v1h-${run}z`;
      c += run;
    }
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${total} ${total}" shape-rendering="crispEdges" data-modules="${total}">` +
    `<rect width="${total}" height="${total}" fill="#fff"/><path fill="#000" d="${d}"/></svg>`
  );
}
