import { describe, expect, it } from 'vitest';
import { decodeCommandLine, decodePanelLine, encodeCommand, encodePanel, frame } from '../src/devices/serial/panel-protocol.js';

// The frames below are the examples of docs/serial-panel.md, CRCs worked out independently
// (CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF). A firmware author checks their CRC code
// against the same table.
const EXAMPLES: Array<[string, unknown]> = [
  ['$HB,4F2A,OK*120C', { type: 'HB', boot: '4F2A', status: 'OK' }],
  ['$HB,4F2A,SENSOR*F17C', { type: 'HB', boot: '4F2A', status: 'SENSOR' }],
  ['$SEL,3*1542', { type: 'SEL', slot: 3 }],
  ['$CAN*1F96', { type: 'CAN' }],
  ['$ACK,K7Q2M9XA*33A3', { type: 'ACK', id: 'K7Q2M9XA' }],
  ['$NAK,K7Q2M9XA,SLOT*2476', { type: 'NAK', id: 'K7Q2M9XA', reason: 'SLOT' }],
  ['$RES,K7Q2M9XA,DROP,1*F5B7', { type: 'RES', id: 'K7Q2M9XA', result: 'DROP', pulses: 1 }],
  ['$RES,K7Q2M9XA,NODROP,3*DBCA', { type: 'RES', id: 'K7Q2M9XA', result: 'NODROP', pulses: 3 }],
  ['$RES,K7Q2M9XA,JAM,1*CC94', { type: 'RES', id: 'K7Q2M9XA', result: 'JAM', pulses: 1 }],
];

describe('serial panel line protocol', () => {
  it('decodes the documented panel frames and encodes them back identically', () => {
    for (const [line, msg] of EXAMPLES) {
      const d = decodePanelLine(line);
      expect(d, line).toEqual({ ok: true, msg });
      expect(encodePanel(msg as never)).toBe(line);
    }
  });

  it('encodes the agent commands as documented', () => {
    expect(encodeCommand({ type: 'HB', seq: 17 })).toBe('$HB,17*020A');
    expect(encodeCommand({ type: 'VEND', id: 'K7Q2M9XA', slot: 3 })).toBe('$VEND,K7Q2M9XA,3*6067');
    expect(decodeCommandLine('$VEND,K7Q2M9XA,3*6067')).toEqual({ ok: true, msg: { type: 'VEND', id: 'K7Q2M9XA', slot: 3 } });
  });

  it('refuses garbled and truncated frames with a reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['$SEL,3*1543', /checksum mismatch/], // one bit of the CRC flipped
      ['$SEL,8*1542', /checksum mismatch/], // slot changed on the wire: must never read as slot 8
      ['$SEL,3*15', /not 4 upper-case hex/], // cut inside the CRC
      ['$SEL,3', /no "\*"/], // cut before the CRC
      ['SEL,3*1542', /no "\$"/],
      ['$SEL,\u00e93*1542', /printable ASCII/],
      [frame(['SEL', '0']), /SEL wants/], // valid CRC, invalid field
      [frame(['SEL', '3', '4']), /SEL wants/],
      [frame(['RES', 'K7Q2M9XA', 'MAYBE', '1']), /RES wants/],
      [frame(['HELLO']), /unknown message type/],
      [`$${'X'.repeat(120)}*0000`, /longer than/],
    ];
    for (const [line, reason] of cases) {
      const d = decodePanelLine(line);
      expect(d.ok, line).toBe(false);
      if (!d.ok) expect(d.reason, line).toMatch(reason);
    }
  });

  it('resynchronises on the last "$": a frame that lost its newline does not spoil the next one', () => {
    const d = decodePanelLine('$SEL,1$SEL,3*1542');
    expect(d).toMatchObject({ ok: true, msg: { type: 'SEL', slot: 3 }, skipped: '$SEL,1' });
  });
});
