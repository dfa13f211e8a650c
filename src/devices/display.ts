import QRCode from 'qrcode';
import type { Writable } from 'node:stream';
import type { Logger } from '../runtime/log.js';
import { texts, type Texts } from './texts.js';

// What the customer sees. The session decides WHICH screen (a small model, below); a Display only
// draws it. Terminal and log renderers exist now; a framebuffer/HDMI or character-LCD driver
// implements the same interface later.

export const SCREENS = [
  'idle',
  'pay',
  'dispensing',
  'thank_you',
  'vend_failed',
  'expired',
  'rejected',
  'out_of_service',
] as const;
export type ScreenName = (typeof SCREENS)[number];

export interface ProductLine {
  slot: number;
  name: string;
  amountText?: string;
  available: boolean;
}

export interface Screen {
  screen: ScreenName;
  product?: string;
  amountText?: string;
  /** the payload to draw as a QR code */
  qr?: string;
  secondsLeft?: number;
  orderId?: string;
  message?: string;
  /** the idle screen's menu */
  products?: ProductLine[];
}

export interface Display {
  show(screen: Screen): void;
  /** the screen currently shown (tests, status) */
  last(): Screen | undefined;
  /** leave the screen in a neutral state on shutdown */
  close(): void;
}

function sameScreen(a: Screen | undefined, b: Screen): boolean {
  return !!a && a.screen === b.screen && a.orderId === b.orderId && a.message === b.message && a.qr === b.qr;
}

// ---- QR as text ---------------------------------------------------------------------------------

const QUIET = 2;

/**
 * Draws a QR code with Unicode half blocks: each text row holds two module rows. The LIGHT modules
 * (and a 2-module quiet zone) are drawn as ink, so on a dark terminal the code reads as dark
 * modules on a light field, which is what phone scanners expect. With `ansi` the lines also force
 * white-on-black, so a light-themed terminal shows the same thing.
 */
export function renderQr(payload: string, opts: { ansi?: boolean } = {}): string[] {
  const m = QRCode.create(payload, { errorCorrectionLevel: 'M' }).modules;
  const n = m.size;
  const total = n + 2 * QUIET;
  const light = (r: number, c: number): boolean => {
    if (r < 0 || r >= total || c < 0 || c >= total) return false; // outside: terminal background
    const rr = r - QUIET;
    const cc = c - QUIET;
    if (rr < 0 || rr >= n || cc < 0 || cc >= n) return true; // quiet zone
    return m.get(rr, cc) === 0;
  };
  const lines: string[] = [];
  for (let r = 0; r < total; r += 2) {
    let line = '';
    for (let c = 0; c < total; c++) {
      const top = light(r, c);
      const bottom = light(r + 1, c);
      line += top && bottom ? '█' : top ? '▀' : bottom ? '▄' : ' ';
    }
    lines.push(opts.ansi ? `\x1b[97;40m${line}\x1b[0m` : line);
  }
  return lines;
}

// ---- text layout shared by the renderers --------------------------------------------------------

export function describeScreen(s: Screen, t: Texts): string[] {
  const out: string[] = [];
  switch (s.screen) {
    case 'idle':
      out.push(t.idle);
      for (const p of s.products ?? []) {
        out.push(`  [${p.slot}] ${p.name}${p.amountText ? `  ${p.amountText}` : ''}${p.available ? '' : `  (${t.outOfStock})`}`);
      }
      break;
    case 'pay':
      out.push(`${s.product ?? ''}  ${s.amountText ?? ''}`.trim());
      out.push(t.pay);
      if (s.secondsLeft !== undefined) out.push(t.secondsLeft(s.secondsLeft));
      out.push(t.cancelHint);
      break;
    case 'dispensing':
      out.push(t.dispensing);
      break;
    case 'thank_you':
      out.push(t.thankYou);
      break;
    case 'vend_failed':
      out.push(t.vendFailed);
      break;
    case 'expired':
      out.push(t.expired);
      break;
    case 'rejected':
      out.push(t.rejected);
      break;
    case 'out_of_service':
      out.push(t.outOfService);
      break;
  }
  if (s.message) out.push(s.message);
  return out;
}

// ---- renderers ----------------------------------------------------------------------------------

/**
 * Draws on a terminal (the Pi's HDMI console or an SSH session). On a TTY each screen replaces the
 * previous one; on a pipe/file only screen changes are printed, so the countdown does not flood
 * a log.
 */
export class TerminalDisplay implements Display {
  private current: Screen | undefined;
  private readonly t: Texts;
  private readonly tty: boolean;
  private qrCache: { payload: string; lines: string[] } | undefined;

  constructor(
    private readonly out: Writable & { isTTY?: boolean } = process.stdout,
    opts: { locale?: string; ansi?: boolean } = {},
  ) {
    this.t = texts(opts.locale ?? 'es');
    this.tty = opts.ansi ?? out.isTTY === true;
  }

  show(screen: Screen): void {
    const changed = !sameScreen(this.current, screen);
    this.current = { ...screen };
    if (!this.tty && !changed) return;
    this.out.write(this.render(screen));
  }

  render(s: Screen): string {
    const lines: string[] = [];
    const [first, ...rest] = describeScreen(s, this.t);
    lines.push('', `  ${first ?? ''}`);
    if (s.screen === 'pay' && s.qr) {
      if (this.qrCache?.payload !== s.qr) this.qrCache = { payload: s.qr, lines: renderQr(s.qr, { ansi: this.tty }) };
      lines.push('');
      for (const l of this.qrCache.lines) lines.push(`  ${l}`);
      lines.push('');
    }
    for (const l of rest) lines.push(`  ${l}`);
    if (s.orderId) lines.push(`  ${s.orderId}`);
    const body = lines.join('\n') + '\n';
    // clear + home on a TTY; a separator otherwise
    return this.tty ? `\x1b[2J\x1b[H${body}` : `----- ${s.screen} -----${body}`;
  }

  last(): Screen | undefined {
    return this.current;
  }

  close(): void {
    if (this.tty) this.out.write('\x1b[0m\n');
  }
}

/** One log line per screen change (headless kiosks, tests, journald). */
export class LogDisplay implements Display {
  private current: Screen | undefined;

  constructor(private readonly logger: Logger) {}

  show(screen: Screen): void {
    const changed = !sameScreen(this.current, screen);
    this.current = { ...screen };
    const { products, qr, ...rest } = screen;
    if (changed) this.logger.info({ ...rest, hasQr: qr !== undefined, products: products?.length }, `screen ${screen.screen}`);
    else this.logger.trace({ secondsLeft: screen.secondsLeft }, 'screen tick');
  }

  last(): Screen | undefined {
    return this.current;
  }

  close(): void {}
}

/** Draws nothing; still remembers the last screen for status and tests. */
export class NullDisplay implements Display {
  private current: Screen | undefined;
  show(screen: Screen): void {
    this.current = { ...screen };
  }
  last(): Screen | undefined {
    return this.current;
  }
  close(): void {}
}
