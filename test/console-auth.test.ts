import { describe, expect, it } from 'vitest';
import { hashPassword, hashSecret, newSecret, passwordProblem, verifyPassword } from '../src/relay/console/passwords.js';
import { roleAllows, scopesAllow } from '../src/core/console-roles.js';

describe('operator passwords', () => {
  it('scrypt hash carries its parameters; right password verifies, wrong does not', async () => {
    const h = await hashPassword('correct horse battery');
    expect(h).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await verifyPassword('correct horse battery', h)).toBe(true);
    expect(await verifyPassword('correct horse batterY', h)).toBe(false);
    // two hashes of one password differ (salt)
    expect(await hashPassword('correct horse battery')).not.toBe(h);
  });

  it('an unknown account never verifies (and still pays for a hash)', async () => {
    expect(await verifyPassword('not-a-real-password-0000', undefined)).toBe(false);
    expect(await verifyPassword('x', 'garbage')).toBe(false);
  });

  it('refuses weak passwords with the reason', async () => {
    expect(passwordProblem('short')).toMatch(/at least 10/);
    expect(passwordProblem('aaaaaaaaaaaa')).toMatch(/repeats/);
    await expect(hashPassword('short')).rejects.toThrow(/at least 10/);
  });

  it('secrets are random and stored as sha256', () => {
    const a = newSecret('qks');
    const b = newSecret('qks');
    expect(a.secret).toMatch(/^qks_[A-Za-z0-9_-]{43}$/);
    expect(a.secret).not.toBe(b.secret);
    expect(a.hash).toBe(hashSecret(a.secret));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('roles and scopes', () => {
  it('a viewer reads, an operator refunds, only an admin changes prices', () => {
    expect(roleAllows('viewer', 'orders.read')).toBe(true);
    expect(roleAllows('viewer', 'refunds.create')).toBe(false);
    expect(roleAllows('operator', 'refunds.create')).toBe(true);
    expect(roleAllows('operator', 'prices.write')).toBe(false);
    expect(roleAllows('admin', 'prices.write')).toBe(true);
  });

  it('an API key without the refunds scope cannot refund', () => {
    expect(scopesAllow(['orders'], 'orders.read')).toBe(true);
    expect(scopesAllow(['orders', 'sales'], 'refunds.create')).toBe(false);
    expect(scopesAllow(['refunds'], 'refunds.create')).toBe(true);
  });
});
