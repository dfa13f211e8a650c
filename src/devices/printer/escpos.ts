// ESC/POS, the command language of Epson-compatible receipt printers: a pure "commands -> bytes"
// encoder, so every receipt can be checked byte for byte without a printer.
//
//   ESC @          1B 40            initialise (clears modes left by a previous job)
//   ESC t n        1B 74 n          character code table (19 = PC858: Latin-1 letters and the euro)
//   ESC a n        1B 61 n          align 0 left, 1 centre, 2 right
//   ESC E n        1B 45 n          bold on/off
//   GS ! n         1D 21 n          character size: width-1 in the high nibble, height-1 in the low
//   LF             0A               print the line
//   ESC d n        1B 64 n          print and feed n lines
//   GS V m         1D 56 m          cut: 0 full, 1 partial
//   GS ( k ...     1D 28 6B pL pH cn fn ...   QR code (cn = 0x31):
//                    fn 41: model (n1 = 0x32 model 2)       fn 43: module size in dots
//                    fn 45: error correction 0x30-0x33 (L M Q H)
//                    fn 50: store data; pL + 256*pH = bytes of data + 3
//                    fn 51: print the stored symbol
//
// The QR store length counts BYTES: a string's .length counts UTF-16 units and is wrong as soon
// as the data holds a non-ASCII character, which makes the printer swallow or print garbage.

export type Charset = 'cp858' | 'ascii';
export type Align = 'left' | 'center' | 'right';
export type QrErrorLevel = 'L' | 'M' | 'Q' | 'H';
export type CutMode = 'full' | 'partial' | 'none';

const ESC = 0x1b;
const GS = 0x1d;
const LF = 0x0a;

/** Code page 858 (850 with the euro at D5), bytes 0x80-0xFF in order. */
const CP858_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈ€ÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u00ad±‗¾¶§÷¸°¨·¹³²■\u00a0';
const CP858 = new Map<string, number>([...CP858_HIGH].map((ch, i) => [ch, 0x80 + i]));

/**
 * Bytes one QR symbol holds (model 2, version 40, byte mode) at each error-correction level: the
 * limit depends on the level the symbol is printed with (receipts use M).
 */
export const QR_MAX_BYTES: Readonly<Record<QrErrorLevel, number>> = { L: 2953, M: 2331, Q: 1663, H: 1273 };

export class EscPosError extends Error {
  override name = 'EscPosError';
}

/**
 * Text to printer bytes. cp858: letters a Spanish/Portuguese receipt needs map 1:1, anything
 * else becomes "?". ascii: accents are dropped ("Café" -> "Cafe") for printers without PC858.
 */
export function encodeText(text: string, charset: Charset): Buffer {
  const out: number[] = [];
  for (const ch of text.normalize('NFC')) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x20 && c < 0x7f) out.push(c);
    else if (c === 0x0a) out.push(LF);
    else if (charset === 'cp858' && CP858.has(ch)) out.push(CP858.get(ch)!);
    else {
      const base = ch.normalize('NFD').replace(/[\u0300-\u036f]/g, '');
      const b = base.codePointAt(0);
      out.push(base.length === 1 && b !== undefined && b >= 0x20 && b < 0x7f ? b : 0x3f);
    }
  }
  return Buffer.from(out);
}

/** Code table number for ESC t. 19 is PC858 on Epson; some clones number it differently. */
export const CP858_TABLE = 19;

export class EscPos {
  private readonly parts: Buffer[] = [];

  constructor(private readonly opts: { charset: Charset; codeTable?: number } = { charset: 'cp858' }) {}

  private push(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }

  /** ESC @, then the code table the text is encoded for */
  init(): this {
    this.push(ESC, 0x40);
    if (this.opts.charset === 'cp858') this.push(ESC, 0x74, this.opts.codeTable ?? CP858_TABLE);
    return this;
  }

  align(a: Align): this {
    return this.push(ESC, 0x61, a === 'left' ? 0 : a === 'center' ? 1 : 2);
  }

  bold(on: boolean): this {
    return this.push(ESC, 0x45, on ? 1 : 0);
  }

  /** width and height multipliers 1-8 */
  size(width: number, height: number): this {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || width > 8 || height < 1 || height > 8) {
      throw new EscPosError(`character size ${width}x${height}: each must be 1-8`);
    }
    return this.push(GS, 0x21, ((width - 1) << 4) | (height - 1));
  }

  text(s: string): this {
    this.parts.push(encodeText(s, this.opts.charset));
    return this;
  }

  line(s = ''): this {
    return this.text(s).push(LF);
  }

  feed(lines: number): this {
    if (!Number.isInteger(lines) || lines < 0 || lines > 255) throw new EscPosError(`feed ${lines}: 0-255 lines`);
    return this.push(ESC, 0x64, lines);
  }

  /** A QR code of `data` (UTF-8), model 2. moduleSize: dots per module, 1-16. */
  qr(data: string, opts: { moduleSize?: number; level?: QrErrorLevel } = {}): this {
    const bytes = Buffer.from(data, 'utf8');
    if (bytes.length === 0) throw new EscPosError('QR data is empty');
    const ecc = opts.level ?? 'M';
    if (bytes.length > QR_MAX_BYTES[ecc]) {
      throw new EscPosError(`QR data is ${bytes.length} bytes; at most ${QR_MAX_BYTES[ecc]} fit one symbol at error correction ${ecc}`);
    }
    const size = opts.moduleSize ?? 6;
    if (!Number.isInteger(size) || size < 1 || size > 16) throw new EscPosError(`QR module size ${size}: 1-16 dots`);
    const level = { L: 0x30, M: 0x31, Q: 0x32, H: 0x33 }[ecc];
    const k = (...fn: number[]) => this.push(GS, 0x28, 0x6b, fn.length & 0xff, fn.length >> 8, ...fn);
    k(0x31, 0x41, 0x32, 0x00); // model 2
    k(0x31, 0x43, size);
    k(0x31, 0x45, level);
    const len = bytes.length + 3; // cn fn m + data
    this.push(GS, 0x28, 0x6b, len & 0xff, len >> 8, 0x31, 0x50, 0x30);
    this.parts.push(bytes);
    k(0x31, 0x51, 0x30); // print
    return this;
  }

  cut(mode: CutMode = 'partial'): this {
    if (mode === 'none') return this;
    return this.push(GS, 0x56, mode === 'full' ? 0 : 1);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}
