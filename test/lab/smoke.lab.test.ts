import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('the lab VM', () => {
  it('runs Debian kernel with the interfaces the drivers need', () => {
    expect(readFileSync('/proc/version', 'utf8')).toMatch(/Linux version 6\./);
    expect(existsSync('/sys/kernel/config/gpio-sim')).toBe(true);
    expect(existsSync('/dev/uhid')).toBe(true);
    expect(existsSync('/dev/uinput')).toBe(true);
  });
});
