// The CRC both audit links use (DEX/UCS blocks and DDCMP messages): CRC-16 with the polynomial
// x^16 + x^15 + x^2 + 1 processed LSB first (0xA001 reflected), starting from 0, sent low byte
// first. One implementation for the reader, the machine twin and the tests.

export function crc16(data: Uint8Array | readonly number[], start = 0): number {
  let crc = start;
  for (const b of data) {
    let d = b & 0xff;
    for (let i = 0; i < 8; i++, d >>= 1) {
      if ((d ^ crc) & 1) crc = (crc >>> 1) ^ 0xa001;
      else crc >>>= 1;
    }
  }
  return crc & 0xffff;
}

/** The two bytes as sent on the wire: low byte first. */
export function crcBytes(crc: number): [number, number] {
  return [crc & 0xff, (crc >>> 8) & 0xff];
}
