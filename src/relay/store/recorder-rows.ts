import type { CommandState } from '../../core/kiosk-command.js';
import type { CommandHistoryRow, CommandRecord, CommandRefusalRecord, KioskPrices, Presence, RefillRecord, StoredStatus } from '../fleet-recorder.js';
import type { SaleRow } from './api.js';
import type { ApiKeyRecord } from './types.js';

// The fleet recorder's rows (migration 8) as records, the same for both stores: JSON columns are
// TEXT in both, integers come back as numbers from both (postgres/rows.ts parses BIGINT exactly).

type Row = Record<string, unknown>;

/** How many refused command frames are kept (all kiosks): a flood of forged frames stays bounded. */
export const REFUSALS_KEPT = 1000;

const json = <T>(v: unknown): T => JSON.parse(v as string) as T;
const jsonOrNull = <T>(v: unknown): T | null => (v === null || v === undefined ? null : json<T>(v));

export function statusFromRow(r: Row): StoredStatus {
  return { kioskId: r.kiosk_id as string, status: json(r.status), receivedAt: r.received_at as number };
}

/** fleet_presence: `online` is a 0/1 INTEGER in both schemas */
export function fleetPresenceFromRow(r: Row): Presence {
  return { kioskId: r.kiosk_id as string, online: r.online === 1, since: r.since as number };
}

export function refillFromRow(r: Row): RefillRecord {
  return {
    refillId: r.refill_id as string,
    kioskId: r.kiosk_id as string,
    at: r.at as number,
    by: r.by_whom as string,
    slots: json(r.slots),
    receivedAt: r.received_at as number,
  };
}

export function refusalFromRow(r: Row): CommandRefusalRecord {
  return {
    kioskId: r.kiosk_id as string,
    frameId: r.frame_id as string,
    commandId: (r.command_id as string | null) ?? null,
    reason: r.reason as CommandRefusalRecord['reason'],
    message: r.message as string,
    ours: r.ours === 1,
    receivedAt: r.received_at as number,
  };
}

export function commandHistoryFromRow(r: Row): CommandHistoryRow {
  return {
    at: r.at as number,
    from: (r.from as CommandState | null) ?? null,
    to: r.to as CommandState,
    event: r.event as CommandHistoryRow['event'],
    detail: (r.detail as string | null) ?? null,
  };
}

export function commandFromRow(r: Row, history: CommandHistoryRow[]): CommandRecord {
  return {
    id: r.id as string,
    kioskId: r.kiosk_id as string,
    kind: r.kind as CommandRecord['kind'],
    action: json(r.action),
    issuedBy: r.issued_by as string,
    reason: (r.reason as string | null) ?? null,
    issuedAt: r.issued_at as number,
    expiresAt: r.expires_at as number,
    state: r.state as CommandState,
    frame: r.frame as string,
    deliveredAt: (r.delivered_at as number | null) ?? null,
    kioskAt: (r.kiosk_at as number | null) ?? null,
    answeredAt: (r.answered_at as number | null) ?? null,
    refusal: jsonOrNull(r.refusal),
    result: jsonOrNull(r.result),
    message: (r.message as string | null) ?? null,
    history,
  };
}

/**
 * The other way: a command's values for `INSERT INTO fleet_commands (id, kiosk_id, kind, action,
 * issued_by, reason, issued_at, expires_at, state, frame, delivered_at, kiosk_at, answered_at,
 * refusal, result, message)`; its history rows are inserted apart.
 */
export function commandValues(c: CommandRecord): unknown[] {
  return [
    c.id,
    c.kioskId,
    c.kind,
    JSON.stringify(c.action),
    c.issuedBy,
    c.reason,
    c.issuedAt,
    c.expiresAt,
    c.state,
    c.frame,
    ...commandAnswerValues(c),
  ];
}

/** What a command's moves change: `delivered_at, kiosk_at, answered_at, refusal, result, message`. */
export function commandAnswerValues(c: Omit<CommandRecord, 'history'>): unknown[] {
  return [c.deliveredAt, c.kioskAt, c.answeredAt, c.refusal ? JSON.stringify(c.refusal) : null, c.result ? JSON.stringify(c.result) : null, c.message];
}

export function pricesFromRow(r: Row): KioskPrices {
  return { catalog: jsonOrNull(r.catalog), prices: json(r.prices), commandId: r.command_id as string };
}

export function apiKeyFromRow(r: Row): ApiKeyRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    scopes: json(r.scopes),
    secretHash: r.secret_hash as string,
    createdAt: r.created_at as number,
    revokedAt: (r.revoked_at as number | null) ?? null,
  };
}

export function parLevelFromRow(r: Row): { kioskId: string; slot: number; par: number } {
  return { kioskId: r.kiosk_id as string, slot: r.slot as number, par: r.par as number };
}

/** A row of salesByDay's query (day, kiosk_id, sku, currency, SUM(quantity) AS units, SUM(amount) AS amount). */
export function saleFromRow(r: Row): SaleRow {
  return { day: r.day as number, kioskId: r.kiosk_id as string, sku: r.sku as string, currency: r.currency as string, units: r.units as number, amount: r.amount as number };
}
