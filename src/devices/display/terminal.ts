import type { Writable } from 'node:stream';
import type { Logger } from '../../runtime/log.js';
import { texts, textsFor, type Texts } from '../texts.js';
import { sameScreen, screenKey, type Display, type Screen } from './model.js';
import { qrMatrix } from './qr.js';
import { viewLines, viewOf } from './view.js';

// `display.driver: terminal` (the Pi's HDMI console, an SSH session, the demo), `log` and
// `none`.

// ---- QR as text ---------------------------------------------------------------------------------

const QUIET = 2;

/**
 * Draws a QR code with Unicode half blocks: each text row holds two module rows. The LIGHT modules
 * (and a 2-module quiet zone) are drawn as ink, so on a dark terminal the code reads as dark
 * modules on a light field, which is what phone scanners expect. With `ansi` the lines also force
 * white-on-black, so a light-themed terminal shows the same thing.
 */
export function renderQr(payload: string, opts: { ansi?: boolean } = {}): string[] {
  const { size: n, dark } = qrMatrix(payload);
  const total = n + 2 * QUIET;
  const light = (r: number, c: number): boolean => {
    if (r < 0 || r >= total || c < 0 || c >= total) return false; // outside: terminal background
    const rr = r - QUIET;
    const cc = c - QUIET;
    if (rr < 0 || rr >= n || cc < 0 || cc >= n) return true; // quiet zone
    return dark[rr * n + cc] === 0;
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

/** A screen as lines of text; the first is the heading. */
export function describeScreen(s: Screen, t: Texts): string[] {
  return viewLines(viewOf(s, t));
}

// ---- terminal -----------------------------------------------------------------------------------

/**
 * Draws on a terminal. On a TTY a new screen is drawn over the old one line by line (home, each
 * line then erase-to-end, erase below: never a blank screen in between), and a countdown tick
 * rewrites only the countdown line, so nothing flickers. On a pipe or file only screen changes are
 * printed, so the countdown does not flood a log.
 */
export class TerminalDisplay implements Display {
  private current: Screen | undefined;
  private readonly t: Texts;
  private readonly tty: boolean;
  private qrCache: { payload: string; lines: string[] } | undefined;
  private drawnKey: string | undefined;
  /** 1-based terminal row of the countdown on the drawn screen */
  private countdownRow: number | undefined;

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
    if (!this.tty) {
      if (changed) this.out.write(this.render(screen));
      return;
    }
    const key = screenKey(screen);
    if (key === this.drawnKey && this.countdownRow !== undefined && screen.secondsLeft !== undefined) {
      // a tick: one line
      this.out.write(`\x1b[${this.countdownRow};1H  ${textsFor(screen, this.t).secondsLeft(screen.secondsLeft)}\x1b[K`);
      return;
    }
    this.drawnKey = key;
    this.out.write(this.render(screen));
  }

  /** The screen as the text written to the terminal. */
  render(s: Screen): string {
    const lines: string[] = [];
    const [first, ...rest] = describeScreen(s, textsFor(s, this.t));
    lines.push('', `  ${first ?? ''}`);
    if (s.screen === 'pay' && s.qr) {
      if (this.qrCache?.payload !== s.qr) this.qrCache = { payload: s.qr, lines: renderQr(s.qr, { ansi: this.tty }) };
      lines.push('');
      for (const l of this.qrCache.lines) lines.push(`  ${l}`);
      lines.push('');
    }
    const countdown = s.secondsLeft !== undefined && s.screen === 'pay' ? textsFor(s, this.t).secondsLeft(s.secondsLeft) : undefined;
    this.countdownRow = undefined;
    for (const l of rest) {
      if (countdown !== undefined && l === countdown) this.countdownRow = lines.length + 1;
      lines.push(`  ${l}`);
    }
    if (s.orderId && s.screen !== 'vend_failed' && s.screen !== 'expired' && s.screen !== 'rejected') lines.push(`  ${s.orderId}`);
    if (!this.tty) return `----- ${s.screen} -----${lines.join('\n')}\n`;
    // home, every line with erase-to-end-of-line, then erase below: drawn over, never cleared first
    return `\x1b[?25l\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`;
  }

  last(): Screen | undefined {
    return this.current;
  }

  close(): void {
    if (this.tty) this.out.write('\x1b[0m\x1b[?25h\n');
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
