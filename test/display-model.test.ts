import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../src/agent/config.js';
import { CURRENCY_CODES, formatMoney } from '../src/core/money.js';
import { SCREENS, viewOf, type Screen } from '../src/devices/display.js';
import { builtinFont } from '../src/devices/display/framebuffer.js';
import { SITE_LOCALE, localeForCurrency, texts, type Texts } from '../src/devices/texts.js';
import { agentConfig } from './agent-helpers.js';

// The screen model and its words: every screen in every language, money per currency, and every
// character the screens can say present in the framebuffer's built-in font.

const LOCALES = ['es', 'es-AR', 'es-UY', 'es-MX', 'es-CL', 'es-CO', 'es-PE', 'pt-BR', 'en'];

function allStrings(t: Texts): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'function') out.push(String((v as (x: number | string) => string)(123)), String((v as (x: string) => string)('ord_Ab-9_x')));
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(t);
  return out;
}

describe('screen texts', () => {
  it('es (voseo for AR/UY, tú elsewhere), pt and en, chosen per kiosk locale; every text present', () => {
    expect(texts('es-AR').pay).toBe('Escaneá el QR con Mercado Pago');
    expect(texts('es').idle).toBe('Elegí un producto');
    expect(texts('es-UY').idle).toBe('Elegí un producto');
    expect(texts('es-MX').idle).toBe('Elige un producto');
    expect(texts('es_CL').pay).toBe('Escanea el QR con Mercado Pago');
    expect(texts('pt-BR').idle).toBe('Escolha um produto');
    expect(texts('en').idle).toBe('Choose a product');
    for (const l of LOCALES) {
      for (const s of allStrings(texts(l))) expect(s.trim().length, `${l}: "${s}"`).toBeGreaterThan(0);
    }
  });

  it('the default language of each Mercado Pago site, from its currency', () => {
    expect(Object.keys(SITE_LOCALE).sort()).toEqual([...CURRENCY_CODES].sort());
    expect(localeForCurrency('BRL')).toBe('pt-BR');
    expect(texts(localeForCurrency('BRL')!).lang).toBe('pt');
    expect(texts(localeForCurrency('CLP')!).idle).toBe('Elige un producto');
    expect(localeForCurrency('USD')).toBeUndefined();
  });

  it('amounts are formatted per currency (integer minor units in, shelf-label text out)', () => {
    expect(formatMoney(150000, 'ARS')).toBe('$ 1.500,00');
    expect(formatMoney(1500, 'BRL')).toBe('R$ 15,00');
    expect(formatMoney(1500, 'CLP')).toBe('$ 1.500');
    expect(formatMoney(99990, 'CLP')).toBe('$ 99.990');
    expect(formatMoney(123456, 'MXN')).toBe('$1,234.56');
  });

  it('the built-in bitmap font has every character any screen can say (Latin-1 accents included)', () => {
    const font = builtinFont();
    const chars = new Set<string>();
    for (const l of LOCALES) for (const s of allStrings(texts(l))) for (const ch of s) chars.add(ch);
    for (const c of CURRENCY_CODES) for (const ch of formatMoney(1234567, c)) chars.add(ch);
    for (let c = 0xa1; c <= 0xff; c++) chars.add(String.fromCharCode(c));
    const missing = [...chars].filter((ch) => !font.has(ch));
    expect(missing).toEqual([]);
    // glyphs are real: an accented letter has more ink than its base letter
    const ink = (ch: string) => font.glyph(ch, 40).alpha.reduce((a, b) => a + b, 0);
    expect(ink('á')).toBeGreaterThan(ink('a'));
    expect(ink('ã')).toBeGreaterThan(ink('a'));
    expect(ink('ç')).toBeGreaterThan(ink('c'));
    expect(font.measure('$ 1.500,00', 40)).toBeGreaterThan(font.measure('$ 15,00', 40));
  });
});

describe('views', () => {
  it('every screen has a title in every language; the vend failure carries the order reference and the refund', () => {
    for (const name of SCREENS) {
      const s: Screen = { screen: name, orderId: 'ord_Zx81kQ2mTn4bVw9s', product: 'Cola', amountText: '$ 1.500,00', qr: 'x', secondsLeft: 9, products: [] };
      for (const l of ['es-AR', 'pt-BR', 'en']) {
        const v = viewOf(s, texts(l));
        expect(v.title.length, `${name} ${l}`).toBeGreaterThan(0);
      }
    }
    const failed = viewOf({ screen: 'vend_failed', orderId: 'ord_Zx81kQ2mTn4bVw9s' }, texts('es-AR'));
    expect(failed).toMatchObject({ tone: 'error', reference: 'Referencia: ord_Zx81kQ2mTn4bVw9s' });
    expect(failed.body.join(' ')).toMatch(/devolvemos el dinero/);
    const pay = viewOf({ screen: 'pay', product: 'Cola', amountText: '$ 1.500,00', qr: 'Q', secondsLeft: 30 }, texts('en'));
    expect(pay).toMatchObject({ price: '$ 1.500,00', qr: 'Q', seconds: 30, countdown: '30 s left to pay', steps: ['Open the Mercado Pago app', 'Scan this QR code'] });
    const idle = viewOf({ screen: 'idle', products: [{ slot: 1, name: 'A', amountText: '$ 1', available: false }, { slot: 2, name: 'B', amountText: '$ 2', available: true, stock: 2 }] }, texts('es'));
    expect(idle.products).toEqual([
      { slot: 1, name: 'A', price: '$ 1', available: false, note: 'agotado' },
      { slot: 2, name: 'B', price: '$ 2', available: true, note: 'quedan 2' },
    ]);
    expect(viewOf({ screen: 'out_of_service', reason: 'service' }, texts('es')).icon).toBe('wrench');
  });
});

describe('display config examples in docs/display.md', () => {
  it('every YAML example there is a valid hardware.display section', () => {
    const doc = readFileSync('docs/display.md', 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    for (const b of blocks) {
      const hw = (parse(b) as { hardware: Record<string, unknown> }).hardware;
      const base = agentConfig('/tmp', 'ws://127.0.0.1:1/v1/kiosk') as Record<string, unknown>;
      expect(() => parseAgentConfig({ ...base, hardware: hw }), b).not.toThrow();
    }
  });
});
