import jsqr from 'jsqr';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatMoney } from '../src/core/money.js';
import { TerminalDisplay, type Screen } from '../src/devices/display.js';
import { POS_QR } from './agent-helpers.js';

// jsqr is CommonJS: under NodeNext its default export is the module, whose .default is the decoder
const jsQR = jsqr.default;

// The terminal renderer (SSH, the demo): its output is turned back into pixels the way a
// terminal with a dark background shows it, and the QR decoded.

function capture(): { out: PassThrough & { isTTY?: boolean }; text: () => string; chunks: string[] } {
  const out = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { out, text: () => chunks.join(''), chunks };
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/**
 * Paints terminal text as a dark terminal shows it: each character cell is one module wide and
 * two high; the block characters' ink is light, everything else (spaces, the background) dark.
 * Only the QR's lines (block characters) are kept.
 */
function terminalToPixels(text: string, scale = 4): { rgba: Uint8ClampedArray; width: number; height: number } {
  const lines = text
    .replace(ANSI, '')
    .split('\n')
    .filter((l) => /[█▀▄]/.test(l) && /^[ █▀▄]+$/.test(l));
  const cols = Math.max(...lines.map((l) => [...l].length)) + 4;
  const rows = lines.length * 2 + 4;
  const width = cols * scale;
  const height = rows * scale;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255; // opaque black
  lines.forEach((line, r) => {
    [...line].forEach((ch, c) => {
      const top = ch === '█' || ch === '▀';
      const bottom = ch === '█' || ch === '▄';
      for (const [lit, half] of [
        [top, 0],
        [bottom, 1],
      ] as const) {
        if (!lit) continue;
        for (let y = 0; y < scale; y++) {
          for (let x = 0; x < scale; x++) {
            const px = (c + 2) * scale + x;
            const py = (2 + r * 2 + half) * scale + y;
            const o = (py * width + px) * 4;
            rgba[o] = rgba[o + 1] = rgba[o + 2] = 255;
          }
        }
      }
    });
  });
  return { rgba, width, height };
}

function decodeTerminal(text: string): string | undefined {
  if (!/[█▀▄]/.test(text)) return undefined;
  const { rgba, width, height } = terminalToPixels(text);
  return jsQR(rgba, width, height)?.data;
}

const pay = (over: Partial<Screen> = {}): Screen => ({
  screen: 'pay',
  product: 'Cola 350ml',
  amountText: formatMoney(150000, 'ARS'),
  qr: POS_QR,
  secondsLeft: 42,
  orderId: 'ord_abcdefghijklmnop',
  ...over,
});

describe('terminal display', () => {
  it('its output holds a QR that decodes (plain and ANSI), beside product, price, steps and countdown', () => {
    const plain = capture();
    new TerminalDisplay(plain.out, { locale: 'es-AR', ansi: false }).show(pay());
    expect(decodeTerminal(plain.text())).toBe(POS_QR);
    for (const want of ['Cola 350ml  $ 1.500,00', 'Abrí la app de Mercado Pago', '42 s para pagar', 'Tecla C: cancelar']) expect(plain.text()).toContain(want);

    const long = `00020101021226${'7'.repeat(2)}0014COM.MERCADOPAGO`.padEnd(396, 'X0Y1') + '6304';
    const tty = capture();
    new TerminalDisplay(tty.out, { locale: 'en', ansi: true }).show(pay({ qr: long, amountText: formatMoney(99990, 'CLP') }));
    expect(tty.text()).toContain('\x1b[97;40m'); // forced white-on-black for light-themed terminals
    expect(decodeTerminal(tty.text())).toBe(long);
    expect(tty.text()).toContain('$ 99.990');
    expect(tty.text()).toContain('42 s left to pay');
  });

  it('on a TTY a screen is drawn over the last one without clearing, and a tick rewrites only the countdown line', () => {
    const t = capture();
    const d = new TerminalDisplay(t.out, { locale: 'es-AR', ansi: true });
    d.show({ screen: 'idle', products: [{ slot: 1, name: 'Cola 350ml', amountText: '$ 1.500,00', available: true }] });
    d.show(pay({ secondsLeft: 42 }));
    const full = t.chunks.at(-1)!;
    expect(full).not.toContain('\x1b[2J'); // no clear screen: no blank flash
    expect(full.startsWith('\x1b[?25l\x1b[H')).toBe(true);
    expect(full.endsWith('\x1b[J')).toBe(true);
    const rows = full.replace('\x1b[?25l\x1b[H', '').split('\n');
    const row = rows.findIndex((l) => l.includes('42 s para pagar')) + 1;
    expect(row).toBeGreaterThan(0);

    d.show(pay({ secondsLeft: 41 }));
    const tick = t.chunks.at(-1)!;
    expect(tick).toBe(`\x1b[${row};1H  41 s para pagar\x1b[K`);
    expect(d.last()?.secondsLeft).toBe(41);

    // a real change redraws the whole screen
    d.show({ screen: 'vend_failed', orderId: 'ord_abcdefghijklmnop' });
    const failed = t.chunks.at(-1)!;
    expect(failed).toContain('No pudimos entregar el producto');
    expect(failed).toContain('Te devolvemos el dinero');
    expect(failed).toContain('Referencia: ord_abcdefghijklmnop');
    expect(decodeTerminal(failed)).toBeUndefined();
    d.close();
    expect(t.chunks.at(-1)).toContain('\x1b[?25h'); // the cursor comes back
  });

  it('says every screen in the kiosk language', () => {
    const cases: Array<[Screen, string, string[]]> = [
      [{ screen: 'out_of_service', reason: 'offline' }, 'pt-BR', ['Fora de serviço', 'Sem conexão']],
      [{ screen: 'out_of_service', reason: 'service' }, 'en', ['Out of service', 'Maintenance in progress']],
      [{ screen: 'out_of_service', reason: 'fault' }, 'es-AR', ['Fuera de servicio', 'falla']],
      [{ screen: 'out_of_stock' }, 'es-MX', ['Sin productos', 'Vuelve pronto']],
      [{ screen: 'expired', orderId: 'ord_x' }, 'es-AR', ['Tiempo agotado', 'Referencia: ord_x']],
      [{ screen: 'dispensing', product: 'Água' }, 'pt-BR', ['Pagamento aprovado!', 'Entregando seu produto… Água']],
      [{ screen: 'thank_you' }, 'en', ['Thank you!', 'Take your product']],
      [{ screen: 'rejected', message: 'Precio desactualizado' }, 'es-AR', ['No se pudo iniciar la compra', 'Precio desactualizado']],
    ];
    for (const [screen, locale, wants] of cases) {
      const t = capture();
      new TerminalDisplay(t.out, { locale, ansi: false }).show(screen);
      for (const w of wants) expect(t.text(), `${screen.screen} ${locale}`).toContain(w);
    }
  });
});
