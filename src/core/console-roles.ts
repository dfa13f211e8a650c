// Who may do what in the operator's console and API. Roles are ordered: an operator can do all a
// viewer can, an admin all an operator can. API keys carry scopes instead of a role, each scope
// naming the one area it opens; a key without the `refunds` scope can read orders but not refund.

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const ACTIONS = {
  'kiosks.read': 'viewer',
  'orders.read': 'viewer',
  'sales.read': 'viewer',
  'stock.read': 'viewer',
  'alerts.read': 'viewer',
  'refunds.create': 'operator',
  'refunds.retry': 'operator',
  'refunds.approve': 'operator',
  'reviews.clear': 'operator',
  'kiosks.service': 'operator',
  'kiosks.test_vend': 'operator',
  'stock.write': 'operator',
  'prices.write': 'admin',
  'kiosks.tokens': 'admin',
  'operators.manage': 'admin',
  'apikeys.manage': 'admin',
  'webhooks.manage': 'admin',
} as const satisfies Record<string, Role>;
export type Action = keyof typeof ACTIONS;

export function roleAllows(role: Role, action: Action): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(ACTIONS[action]);
}

/** API key scopes and the actions each opens. */
export const SCOPES = {
  kiosks: ['kiosks.read'],
  orders: ['orders.read'],
  sales: ['sales.read'],
  stock: ['stock.read', 'stock.write'],
  refunds: ['refunds.create', 'refunds.retry', 'refunds.approve'],
  prices: ['prices.write'],
} as const satisfies Record<string, readonly Action[]>;
export type Scope = keyof typeof SCOPES;

export function scopesAllow(scopes: readonly Scope[], action: Action): boolean {
  return scopes.some((s) => (SCOPES[s] as readonly Action[]).includes(action));
}

export function isRole(x: string): x is Role {
  return (ROLES as readonly string[]).includes(x);
}

export function isScope(x: string): x is Scope {
  return Object.hasOwn(SCOPES, x);
}
