// What the customer sees, as plain data. The session decides WHICH screen and fills this in
// (texts already chosen, amounts already formatted with src/core/money.ts); a Display only
// draws it. Plain data on purpose: it crosses a WebSocket to the kiosk page unchanged, it is
// logged, and tests compare it.

export const SCREENS = [
  'idle',
  'pay',
  'dispensing',
  'thank_you',
  'vend_failed',
  'expired',
  'rejected',
  'out_of_stock',
  'out_of_service',
] as const;
export type ScreenName = (typeof SCREENS)[number];

/** Why the kiosk is out of service: the relay is unreachable, a device fault, or a technician is working on it. */
export type OutOfServiceReason = 'offline' | 'fault' | 'service';

export interface ProductLine {
  slot: number;
  name: string;
  /** the price, formatted (formatMoney) */
  amountText?: string;
  available: boolean;
  /** units left, when the screen should say it */
  stock?: number;
}

export interface Screen {
  screen: ScreenName;
  product?: string;
  /** the price, formatted (formatMoney) */
  amountText?: string;
  /** the payload to draw as a QR code */
  qr?: string;
  secondsLeft?: number;
  orderId?: string;
  message?: string;
  /** the idle screen's menu */
  products?: ProductLine[];
  /** out_of_service: why */
  reason?: OutOfServiceReason;
  /** language of this screen (es, pt, en, with region); the renderer's default when absent */
  locale?: string;
}

export interface Display {
  show(screen: Screen): void;
  /**
   * Optional: show() that draws and starts writing before it returns, so the frame goes out while
   * the caller does slow synchronous work (the order's journal commit). The show() of the same
   * screen that the caller makes afterwards draws nothing again.
   */
  showNow?(screen: Screen): void;
  /** the screen currently shown (tests, status) */
  last(): Screen | undefined;
  /** leave the screen in a neutral state on shutdown */
  close(): void;
}

/** Everything of a screen except the countdown: two screens with the same key differ only by a tick. */
export function screenKey(s: Screen): string {
  const { secondsLeft: _ignored, ...rest } = s;
  return JSON.stringify(rest);
}

/** Same screen as far as a log or a non-TTY terminal cares (a countdown tick is not a change). */
export function sameScreen(a: Screen | undefined, b: Screen): boolean {
  return !!a && a.screen === b.screen && a.orderId === b.orderId && a.message === b.message && a.qr === b.qr;
}
