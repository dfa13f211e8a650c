import type { DeliveryState } from '../../core/outbound-delivery.js';
import type { AlertRecord, DeliveryRecord, PresenceRow } from './types.js';

// Rows of schema 7 (presence, alerts, deliveries) as records, for both stores: SQLite returns
// numbers, PostgreSQL's pool parses BIGINT exactly (postgres/rows.ts); Number() accepts either.

type Row = Record<string, unknown>;

export function presenceFromRow(r: Row): PresenceRow {
  return { kioskId: r.kiosk_id as string, instanceId: r.instance_id as string, connectedAt: Number(r.connected_at), seenAt: Number(r.seen_at) };
}

export function alertFromRow(r: Row): AlertRecord {
  return {
    id: r.id as string,
    key: r.key as string,
    kind: r.kind as AlertRecord['kind'],
    kioskId: (r.kiosk_id as string | null) ?? null,
    summary: r.summary as string,
    facts: JSON.parse(r.facts as string) as Record<string, unknown>,
    firedAt: Number(r.fired_at),
    clearedAt: r.cleared_at === null || r.cleared_at === undefined ? null : Number(r.cleared_at),
  };
}

export function deliveryFromRow(r: Row): DeliveryRecord {
  return {
    id: r.id as string,
    channel: r.channel as string,
    event: r.event as string,
    payload: r.payload as string,
    subject: r.subject as string,
    state: r.state as DeliveryState,
    attempts: Number(r.attempts),
    nextAt: Number(r.next_at),
    lastError: (r.last_error as string | null) ?? null,
    createdAt: Number(r.created_at),
    deliveredAt: r.delivered_at === null || r.delivered_at === undefined ? null : Number(r.delivered_at),
  };
}

