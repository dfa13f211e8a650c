// Key names and codes of evdev keypads. Apart from src/devices/evdev-buttons.ts (the reader) so the
// config check (src/agent/hardware-config.ts) can name keys without loading the reader, its
// child process and readline into every agent.

/** Key codes of linux/input-event-codes.h that keypads send. */
export const KEY_CODES: Record<string, number> = {
  ESC: 1,
  '1': 2,
  '2': 3,
  '3': 4,
  '4': 5,
  '5': 6,
  '6': 7,
  '7': 8,
  '8': 9,
  '9': 10,
  '0': 11,
  MINUS: 12,
  BACKSPACE: 14,
  TAB: 15,
  ENTER: 28,
  KPASTERISK: 55,
  SPACE: 57,
  NUMLOCK: 69,
  KP7: 71,
  KP8: 72,
  KP9: 73,
  KPMINUS: 74,
  KP4: 75,
  KP5: 76,
  KP6: 77,
  KPPLUS: 78,
  KP1: 79,
  KP2: 80,
  KP3: 81,
  KP0: 82,
  KPDOT: 83,
  KPENTER: 96,
  KPSLASH: 98,
  DELETE: 111,
};

const CODE_NAMES = new Map(Object.entries(KEY_CODES).map(([n, c]) => [c, n]));

/** "KP1", "KEY_KP1", "79" -> 79 */
export function keyCode(key: string | number): number | undefined {
  if (typeof key === 'number') return Number.isInteger(key) && key >= 0 && key < 768 ? key : undefined;
  const k = key.trim().toUpperCase().replace(/^KEY_/, '');
  if (/^\d+$/.test(k) && k.length > 1) return Number(k);
  return KEY_CODES[k];
}

export function keyName(code: number): string {
  const n = CODE_NAMES.get(code);
  return n ? `KEY_${n}` : `key ${code}`;
}
