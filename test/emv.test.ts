import { describe, expect, it } from 'vitest';
import {
  EmvError,
  buildMercadoPagoQr,
  crc16,
  crc16Hex,
  decodeEmv,
  decodeTlv,
  encodeEmv,
  encodeTlv,
  findField,
  parseMercadoPagoQr,
  buildMercadoPagoOrderQr,
  type EmvInputField,
} from '../src/emv/index.js';

const VECTOR =
  '00020101021243380016com.mercadolibre02011030958224599352045812530398654045.005802BR5909TuNegocio6009Sao Paulo62350510ticket-1230707CAJA0010806Bebida63049D3B';

function emvError(fn: () => unknown): EmvError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EmvError);
    return err as EmvError;
  }
  throw new Error('expected an EmvError');
}

describe('crc16 (CCITT-FALSE)', () => {
  it('matches the catalogue check value', () => {
    expect(crc16('123456789')).toBe(0x29b1);
    expect(crc16Hex('123456789')).toBe('29B1');
  });

  it('hashes UTF-8 bytes, not UTF-16 units', () => {
    expect(crc16('á')).toBe(crc16(new Uint8Array([0xc3, 0xa1])));
    expect(crc16Hex('')).toBe('FFFF');
  });
});

describe('TLV', () => {
  it('decodes and verifies the reference vector', () => {
    const fields = decodeEmv(VECTOR);
    expect(fields.map((f) => f.id)).toEqual(['00', '01', '43', '52', '53', '54', '58', '59', '60', '62', '63']);
    expect(findField(fields, '43', '00')?.value).toBe('com.mercadolibre');
    expect(findField(fields, '43', '03')?.value).toBe('582245993');
    expect(findField(fields, '62', '07')?.value).toBe('CAJA001');
    expect(findField(fields, '63')?.value).toBe('9D3B');
  });

  it('counts characters, not bytes, and computes the CRC over UTF-8', () => {
    const qr = encodeEmv([
      { id: '00', value: '01' },
      { id: '60', value: 'Bogotá' },
    ]);
    expect(qr.startsWith('0002016006Bogotá6304')).toBe(true);
    expect(qr.slice(-4)).toBe(crc16Hex(Buffer.from(qr.slice(0, -4), 'utf8')));
    expect(findField(decodeEmv(qr), '60')?.value).toBe('Bogotá');
  });

  it('nests templates', () => {
    const text = encodeTlv([{ id: '62', children: [{ id: '07', value: 'POS1' }] }]);
    expect(text).toBe('62080704POS1');
    expect(decodeTlv(text)[0]?.children).toEqual([{ id: '07', value: 'POS1' }]);
  });

  it('reports a CRC mismatch with expected and found', () => {
    const err = emvError(() => decodeEmv(VECTOR.slice(0, -4) + '0000'));
    expect(err.code).toBe('CRC_MISMATCH');
    expect(err.expected).toBe('9D3B');
    expect(err.found).toBe('0000');
    expect(err.message).toContain('9D3B');
  });

  it('detects an altered value through the CRC', () => {
    const err = emvError(() => decodeEmv(VECTOR.replace('5.00', '1.00')));
    expect(err.code).toBe('CRC_MISMATCH');
  });

  it('accepts a lowercase CRC', () => {
    expect(() => decodeEmv(VECTOR.slice(0, -4) + '9d3b')).not.toThrow();
  });

  it('reports truncation', () => {
    const err = emvError(() => decodeEmv(VECTOR.slice(0, 40)));
    expect(err.code).toBe('TRUNCATED');
    expect(err.path).toBe('43');
    expect(err.message).toMatch(/declares length 38/);
  });

  it('reports a non-numeric length', () => {
    const err = emvError(() => decodeTlv('00AB01'));
    expect(err.code).toBe('BAD_LENGTH');
    expect(err.path).toBe('00');
  });

  it('requires 00 first and 63 last', () => {
    expect(emvError(() => decodeEmv('0102116304ABCD')).code).toBe('MISSING_PAYLOAD_FORMAT');
    expect(emvError(() => decodeEmv('000201010211')).code).toBe('MISSING_CRC');
    expect(emvError(() => encodeEmv([{ id: '01', value: '11' }])).code).toBe('MISSING_PAYLOAD_FORMAT');
  });

  it('refuses empty values, bad ids and over-long values when encoding', () => {
    expect(emvError(() => encodeTlv([{ id: '59', value: '' }])).code).toBe('EMPTY_VALUE');
    expect(emvError(() => encodeTlv([{ id: '5', value: 'x' }])).code).toBe('BAD_ID');
    expect(emvError(() => encodeTlv([{ id: '59', value: 'x'.repeat(100) }])).code).toBe('VALUE_TOO_LONG');
  });
});

describe('Mercado Pago QR', () => {
  it('parses the reference vector', () => {
    const qr = parseMercadoPagoQr(VECTOR);
    expect(qr).toMatchObject({
      initiation: 'dynamic',
      collectorId: '582245993',
      templateVersion: '1',
      mcc: '5812',
      currency: 'BRL',
      country: 'BR',
      amountMinor: 500,
      merchantName: 'TuNegocio',
      merchantCity: 'Sao Paulo',
      referenceLabel: 'ticket-123',
      terminalLabel: 'CAJA001',
      purpose: 'Bebida',
      crc: '9D3B',
    });
  });

  it('rebuilds the reference vector byte for byte', () => {
    expect(
      buildMercadoPagoQr({
        collectorId: 582245993,
        mcc: '5812',
        currency: 'BRL',
        amountMinor: 500,
        merchantName: 'TuNegocio',
        merchantCity: 'Sao Paulo',
        referenceLabel: 'ticket-123',
        terminalLabel: 'CAJA001',
        purpose: 'Bebida',
      }),
    ).toBe(VECTOR);
  });

  it('round-trips a static POS QR with non-ASCII text and a zero-decimal currency', () => {
    const qr = buildMercadoPagoQr({
      collectorId: '123456',
      sponsorId: 987,
      currency: 'COP',
      merchantName: 'Tienda Ñandú',
      merchantCity: 'Bogotá',
      terminalLabel: 'KIOSK01',
    });
    expect(qr).toContain('010211');
    expect(qr).toContain('6006Bogotá');
    expect(qr).not.toMatch(/54\d\d/);
    const parsed = parseMercadoPagoQr(qr);
    expect(parsed).toMatchObject({
      initiation: 'static',
      collectorId: '123456',
      sponsorId: '987',
      currency: 'COP',
      country: 'CO',
      merchantCity: 'Bogotá',
      merchantName: 'Tienda Ñandú',
      terminalLabel: 'KIOSK01',
    });
    expect(parsed.amountMinor).toBeUndefined();

    const dynamic = parseMercadoPagoQr(
      buildMercadoPagoQr({ collectorId: 1, currency: 'CLP', amountMinor: 1500, merchantName: 'X', merchantCity: 'Y' }),
    );
    expect(dynamic.amountMinor).toBe(1500);
    expect(findField(dynamic.fields, '54')?.value).toBe('1500');
  });

  it('validates lengths with errors naming the field', () => {
    const base = { collectorId: 1, currency: 'ARS' as const, merchantName: 'Kiosco', merchantCity: 'Rosario' };
    const name = emvError(() => buildMercadoPagoQr({ ...base, merchantName: 'N'.repeat(26) }));
    expect(name.code).toBe('VALUE_TOO_LONG');
    expect(name.path).toBe('59');
    expect(emvError(() => buildMercadoPagoQr({ ...base, merchantCity: 'C'.repeat(16) })).path).toBe('60');
    expect(emvError(() => buildMercadoPagoQr({ ...base, referenceLabel: 'r'.repeat(26) })).path).toBe('62.05');
    expect(emvError(() => buildMercadoPagoQr({ ...base, terminalLabel: 't'.repeat(26) })).path).toBe('62.07');
    expect(emvError(() => buildMercadoPagoQr({ ...base, collectorId: 'abc' })).path).toBe('43.03');
    expect(emvError(() => buildMercadoPagoQr({ ...base, amountMinor: 0 })).path).toBe('54');
    // 25 characters with accents is fine: limits count characters
    expect(() => buildMercadoPagoQr({ ...base, merchantName: 'á'.repeat(25) })).not.toThrow();
  });

  it('rejects QRs that are not Mercado Pago', () => {
    const pix = encodeEmv([
      { id: '00', value: '01' },
      { id: '01', value: '11' },
      { id: '26', children: [{ id: '00', value: 'br.gov.bcb.pix' }] },
      { id: '52', value: '0000' },
      { id: '53', value: '986' },
      { id: '58', value: 'BR' },
      { id: '59', value: 'X' },
      { id: '60', value: 'Y' },
    ]);
    expect(emvError(() => parseMercadoPagoQr(pix)).path).toBe('43.00');
  });
});

describe('Mercado Pago order qr_data (what the online APIs return)', () => {
  const UUID = '3f1a9c2e-7b4d-4e8a-9c1f-0a2b3c4d5e6f';
  // Assembled field by field (not with the builder) so the parser is tested against the published
  // layout: 00, 01=12, 43{00 GUI, 02 version, 06 UUID}, 52, 53, 58, 59, 60, 62{05, 07}, 63; no 54.
  function orderQr(opts: { gui?: string; pix?: 'with' | 'only'; pixGui?: string; pixUuid?: string; extra43?: EmvInputField[] } = {}): string {
    const fields: EmvInputField[] = [
      { id: '00', value: '01' },
      { id: '01', value: '12' },
    ];
    if (opts.pix) {
      fields.push({
        id: '26',
        children: [
          { id: '00', value: opts.pixGui ?? 'BR.GOV.BCB.PIX' },
          { id: '25', value: `pix-qr.mercadopago.com/instore/o/v2/${opts.pixUuid ?? UUID}` },
        ],
      });
    }
    if (opts.pix !== 'only') {
      fields.push({
        id: '43',
        children: [{ id: '00', value: opts.gui ?? 'COM.MERCADOLIBRE' }, { id: '02', value: '3' }, { id: '06', value: UUID }, ...(opts.extra43 ?? [])],
      });
    }
    fields.push(
      { id: '52', value: '0000' },
      { id: '53', value: opts.pix ? '986' : '032' },
      { id: '58', value: opts.pix ? 'BR' : 'AR' },
      { id: '59', value: 'Kiosco Central' },
      { id: '60', value: 'Rosario' },
      { id: '62', children: [{ id: '05', value: '***' }, { id: '07', value: 'KIOSK01' }] },
    );
    return encodeEmv(fields);
  }

  it('reads an upper-case GUI, the order UUID and no amount', () => {
    const qr = parseMercadoPagoQr(orderQr());
    expect(qr).toMatchObject({ initiation: 'dynamic', orderUuid: UUID, templateVersion: '3', currency: 'ARS', referenceLabel: '***', terminalLabel: 'KIOSK01' });
    expect(qr.collectorId).toBeUndefined();
    expect(qr.amountMinor).toBeUndefined();
    expect(qr.pixUrl).toBeUndefined();
  });

  it('reads a lower-case GUI the same way', () => {
    expect(parseMercadoPagoQr(orderQr({ gui: 'com.mercadolibre' })).orderUuid).toBe(UUID);
  });

  it('reads the Pix template alongside 43, and Pix alone', () => {
    const both = parseMercadoPagoQr(orderQr({ pix: 'with' }));
    expect(both).toMatchObject({ orderUuid: UUID, pixUrl: `pix-qr.mercadopago.com/instore/o/v2/${UUID}`, currency: 'BRL' });
    const only = parseMercadoPagoQr(orderQr({ pix: 'only', pixGui: 'br.gov.bcb.pix' }));
    expect(only.orderUuid).toBe(UUID);
    expect(only.pixUrl).toContain('pix-qr.mercadopago.com');
  });

  it('refuses a Pix URL that names another order than 43/06', () => {
    const err = emvError(() => parseMercadoPagoQr(orderQr({ pix: 'with', pixUuid: '00000000-0000-4000-8000-000000000000' })));
    expect(err.code).toBe('INVALID_VALUE');
    expect(err.path).toBe('26.25');
  });

  it('refuses a bad CRC, a bad UUID and a QR naming neither seller nor order', () => {
    const good = orderQr();
    expect(emvError(() => parseMercadoPagoQr(good.slice(0, -4) + (good.endsWith('0000') ? '1111' : '0000'))).code).toBe('CRC_MISMATCH');
    const badUuid = encodeEmv([
      { id: '00', value: '01' },
      { id: '01', value: '12' },
      { id: '43', children: [{ id: '00', value: 'COM.MERCADOLIBRE' }, { id: '06', value: 'not-a-uuid' }] },
      { id: '52', value: '0000' },
      { id: '53', value: '032' },
      { id: '58', value: 'AR' },
      { id: '59', value: 'X' },
      { id: '60', value: 'Y' },
    ]);
    expect(emvError(() => parseMercadoPagoQr(badUuid)).path).toBe('43.06');
    const nobody = encodeEmv([
      { id: '00', value: '01' },
      { id: '01', value: '12' },
      { id: '43', children: [{ id: '00', value: 'COM.MERCADOLIBRE' }, { id: '02', value: '3' }] },
      { id: '52', value: '0000' },
      { id: '53', value: '032' },
      { id: '58', value: 'AR' },
      { id: '59', value: 'X' },
      { id: '60', value: 'Y' },
    ]);
    expect(emvError(() => parseMercadoPagoQr(nobody)).code).toBe('MISSING_FIELD');
    // truncated structure
    expect(emvError(() => parseMercadoPagoQr(good.slice(0, 20))).code).not.toBe('CRC_MISMATCH');
  });

  it('builds what it reads (sandbox builder), with Pix in Brazil by default', () => {
    const ars = buildMercadoPagoOrderQr({ orderUuid: UUID, currency: 'ARS', merchantName: 'Kiosco', merchantCity: 'Rosario', terminalLabel: 'K1' });
    expect(ars).toContain('0016COM.MERCADOLIBRE');
    expect(findField(decodeEmv(ars), '54')).toBeUndefined();
    expect(parseMercadoPagoQr(ars)).toMatchObject({ orderUuid: UUID, terminalLabel: 'K1', initiation: 'dynamic' });
    const brl = parseMercadoPagoQr(buildMercadoPagoOrderQr({ orderUuid: UUID, currency: 'BRL', merchantName: 'Loja', merchantCity: 'Sao Paulo' }));
    expect(brl.pixUrl).toBe(`pix-qr.mercadopago.com/instore/o/v2/${UUID}`);
    expect(findField(brl.fields, '26', '00')?.value).toBe('br.gov.bcb.pix');
  });
});
