import { isRole, ROLES, roleAllows, ACTIONS, type Action, type Role } from '../../../core/console-roles.js';
import { hashSecret, newSecret, verifyPassword } from '../passwords.js';
import type { OperatorRecord, RelayStore } from '../../store/index.js';

// Console logins: a session is a random secret in an HttpOnly, SameSite=Strict cookie (Secure when
// the relay's public url is https); the store keeps only its sha256 and an expiry. Failed logins
// are limited per source address and per account (a sliding window in memory: a restart forgives,
// which costs an attacker a restart they cannot cause).

export const SESSION_COOKIE = 'qrkiosk_console';

export interface LoginLimits {
  windowMs: number;
  perSource: number;
  perAccount: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { windowMs: 15 * 60_000, perSource: 20, perAccount: 5 };

class FailureWindow {
  private readonly fails = new Map<string, number[]>();
  constructor(private readonly windowMs: number) {}
  count(key: string, now: number): number {
    const list = (this.fails.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length) this.fails.set(key, list);
    else this.fails.delete(key);
    return list.length;
  }
  note(key: string, now: number): void {
    const list = this.fails.get(key) ?? [];
    list.push(now);
    this.fails.set(key, list);
  }
}

export type LoginResult = { ok: true; secret: string; operator: OperatorRecord; expiresAt: number } | { ok: false; status: 401 | 429; message: string };

export interface SessionUser {
  operator: OperatorRecord;
  role: Role;
  tokenHash: string;
}

export class ConsoleSessions {
  private readonly bySource: FailureWindow;
  private readonly byAccount: FailureWindow;

  constructor(
    private readonly o: { store: RelayStore; now: () => number; ttlMs: number; limits?: LoginLimits },
  ) {
    const l = o.limits ?? DEFAULT_LOGIN_LIMITS;
    this.bySource = new FailureWindow(l.windowMs);
    this.byAccount = new FailureWindow(l.windowMs);
  }

  private get limits(): LoginLimits {
    return this.o.limits ?? DEFAULT_LOGIN_LIMITS;
  }

  async login(source: string, emailInput: unknown, password: unknown): Promise<LoginResult> {
    const now = this.o.now();
    const email = typeof emailInput === 'string' ? emailInput.trim().toLowerCase() : '';
    if (this.bySource.count(source, now) >= this.limits.perSource || (email && this.byAccount.count(email, now) >= this.limits.perAccount)) {
      return { ok: false, status: 429, message: `too many failed logins: wait ${Math.round(this.limits.windowMs / 60_000)} minutes and try again` };
    }
    const op = email ? await this.o.store.getOperatorByEmail(email) : undefined;
    // verifyPassword runs the KDF even without an account, so timing does not tell which exist
    const good = await verifyPassword(typeof password === 'string' ? password : '', op?.passwordHash);
    if (!good || !op || op.disabledAt !== null || !isRole(op.role)) {
      this.bySource.note(source, now);
      if (email) this.byAccount.note(email, now);
      return { ok: false, status: 401, message: 'wrong e-mail or password (or the account is disabled)' };
    }
    const { secret, hash } = newSecret('qks');
    const expiresAt = now + this.o.ttlMs;
    await this.o.store.insertOperatorSession({ tokenHash: hash, operatorId: op.id, createdAt: now, expiresAt });
    return { ok: true, secret, operator: op, expiresAt };
  }

  /** The logged-in operator of a cookie header, or undefined (no cookie, expired, disabled). */
  async user(cookieHeader: string | undefined): Promise<SessionUser | undefined> {
    const secret = readCookie(cookieHeader, SESSION_COOKIE);
    if (!secret) return undefined;
    const tokenHash = hashSecret(secret);
    const s = await this.o.store.getOperatorSession(tokenHash);
    if (!s || s.expiresAt <= this.o.now()) return undefined;
    const op = await this.o.store.getOperator(s.operatorId);
    if (!op || op.disabledAt !== null || !isRole(op.role)) return undefined;
    return { operator: op, role: op.role, tokenHash };
  }

  logout(tokenHash: string): Promise<void> {
    return this.o.store.deleteOperatorSession(tokenHash);
  }
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

export function sessionCookie(secret: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(secret)}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

/** Every action the role may take (the page shows only the buttons for these). */
export function actionsOf(role: Role): Action[] {
  return (Object.keys(ACTIONS) as Action[]).filter((a) => roleAllows(role, a));
}

export { ROLES };
