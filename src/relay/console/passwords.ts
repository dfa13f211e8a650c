import { randomBytes, scrypt, timingSafeEqual, createHash } from 'node:crypto';

// Operator passwords, hashed with scrypt (memory-hard: each guess costs 32 MiB and ~50-100 ms on a
// server, which makes a stolen table slow to crack). The stored form carries its parameters, so
// they can be raised later without breaking existing accounts:
//   scrypt$N$r$p$<salt base64url>$<hash base64url>

export const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keyLen: 32 } as const;
// Node refuses N*r*128 bytes above maxmem (default 32 MiB): leave room for the working set.
const MAX_MEM = 64 * 1024 * 1024;

export const MIN_PASSWORD_LENGTH = 10;

function derive(password: string, salt: Buffer, N: number, r: number, p: number, keyLen: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, keyLen, { N, r, p, maxmem: MAX_MEM }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Refuses passwords a person should not use for a console that moves money. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `the password is too short: use at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > 1024) return 'the password is too long: use at most 1024 characters';
  if (/^(.)\1*$/.test(password)) return 'the password repeats one character: choose a real one';
  return undefined;
}

export async function hashPassword(password: string): Promise<string> {
  const problem = passwordProblem(password);
  if (problem) throw new Error(problem);
  const salt = randomBytes(16);
  const key = await derive(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLen);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

// A fixed hash to verify against when the account does not exist, so "no such user" takes as
// long as "wrong password" and logins cannot probe which e-mails have accounts.
let dummy: Promise<string> | undefined;

export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const target = stored ?? (await (dummy ??= hashPassword('not-a-real-password-0000')));
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(target);
  if (!m || password.length > 1024) return false;
  const want = Buffer.from(m[5]!, 'base64url');
  const got = await derive(password, Buffer.from(m[4]!, 'base64url'), Number(m[1]), Number(m[2]), Number(m[3]), want.length);
  return timingSafeEqual(want, got) && stored !== undefined;
}

/** A bearer secret (session cookie, API key): random, shown once, stored only as its sha256. */
export function newSecret(prefix: string): { secret: string; hash: string } {
  const secret = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { secret, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
