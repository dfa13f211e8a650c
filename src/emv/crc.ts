// CRC-16/CCITT-FALSE, the checksum EMVCo merchant-presented QR codes carry in tag 63.
// Parameters: poly 0x1021, init 0xFFFF, no input/output reflection, no final XOR.
// Check value: crc16("123456789") === 0x29B1.

const encoder = new TextEncoder();

/** Lookup table: one entry per byte value, so the loop does one shift + one XOR per byte. */
const TABLE: Uint16Array = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    table[byte] = crc;
  }
  return table;
})();

/**
 * CRC over the UTF-8 bytes of `input` (strings are encoded first). Wallets compute it over bytes,
 * so a name like "Bogotá" must be hashed as its UTF-8 encoding, never as UTF-16 code units.
 */
export function crc16(input: string | Uint8Array): number {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  let crc = 0xffff;
  for (const b of bytes) {
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  }
  return crc;
}

/** The 4 uppercase hex digits EMVCo puts after "6304". */
export function crc16Hex(input: string | Uint8Array): string {
  return crc16(input).toString(16).toUpperCase().padStart(4, '0');
}
