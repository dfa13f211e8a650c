import { kioskCommand, type CommandEvent, type CommandState } from '../../../core/kiosk-command.js';
import type {
  CommandPatch,
  CommandRecord,
  CommandRefusalRecord,
  FleetRecorder,
  KioskPrices,
  Presence,
  RefillRecord,
  StoredStatus,
} from '../../fleet-recorder.js';
import { StoreError } from '../types.js';
import { commandAnswerValues, commandFromRow, commandHistoryFromRow, commandValues, fleetPresenceFromRow, pricesFromRow, refillFromRow, refusalFromRow, statusFromRow, REFUSALS_KEPT } from '../recorder-rows.js';
import type { SqliteConn, Sync } from './conn.js';

// The fleet recorder's tables (migration 8): the kiosks' reports and the operator's commands.
// transitionCommand reads the state, checks the move against core/kiosk-command.ts and writes the
// new state conditional on the one it read, with the history row, in one atomic block.

export class SqliteFleet implements Sync<FleetRecorder> {
  constructor(private readonly c: SqliteConn) {}

  saveStatus(s: StoredStatus): void {
    this.c.run(
      `INSERT INTO fleet_status (kiosk_id, status, received_at) VALUES (?, ?, ?)
       ON CONFLICT(kiosk_id) DO UPDATE SET status = excluded.status, received_at = excluded.received_at`,
      s.kioskId,
      JSON.stringify(s.status),
      s.receivedAt,
    );
  }

  statuses(): StoredStatus[] {
    return this.c.many(statusFromRow, 'SELECT * FROM fleet_status ORDER BY kiosk_id');
  }

  setPresence(p: Presence): void {
    this.c.run(
      `INSERT INTO fleet_presence (kiosk_id, online, since) VALUES (?, ?, ?)
       ON CONFLICT(kiosk_id) DO UPDATE SET online = excluded.online, since = excluded.since`,
      p.kioskId,
      p.online ? 1 : 0,
      p.since,
    );
  }

  presences(): Presence[] {
    return this.c.many(fleetPresenceFromRow, 'SELECT * FROM fleet_presence ORDER BY kiosk_id');
  }

  recordRefill(r: RefillRecord): boolean {
    return (
      this.c.run(
        'INSERT OR IGNORE INTO fleet_refills (refill_id, kiosk_id, at, by_whom, slots, received_at) VALUES (?, ?, ?, ?, ?, ?)',
        r.refillId,
        r.kioskId,
        r.at,
        r.by,
        JSON.stringify(r.slots),
        r.receivedAt,
      ).changes > 0
    );
  }

  refills(kioskId?: string, limit = 50): RefillRecord[] {
    return this.c.many(
      refillFromRow,
      'SELECT * FROM fleet_refills WHERE (? IS NULL OR kiosk_id = ?) ORDER BY received_at DESC, refill_id DESC LIMIT ?',
      kioskId ?? null,
      kioskId ?? null,
      limit,
    );
  }

  recordRefusal(r: CommandRefusalRecord): void {
    this.c.atomically(() => {
      const seq = this.c.run(
        'INSERT INTO fleet_refusals (kiosk_id, frame_id, command_id, reason, message, ours, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        r.kioskId,
        r.frameId,
        r.commandId,
        r.reason,
        r.message,
        r.ours ? 1 : 0,
        r.receivedAt,
      ).lastInsertRowid;
      // a flood of forged frames must not grow the database without bound
      this.c.run('DELETE FROM fleet_refusals WHERE seq <= ?', Number(seq) - REFUSALS_KEPT);
    });
  }

  refusals(kioskId?: string, limit = 50): CommandRefusalRecord[] {
    return this.c.many(refusalFromRow, 'SELECT * FROM fleet_refusals WHERE (? IS NULL OR kiosk_id = ?) ORDER BY seq DESC LIMIT ?', kioskId ?? null, kioskId ?? null, limit);
  }

  insertCommand(c: CommandRecord): void {
    this.c.atomically(() => {
      if (this.c.count('SELECT COUNT(*) AS n FROM fleet_commands WHERE id = ?', c.id) > 0) throw new StoreError(`command ${c.id} exists already`);
      this.c.run(
        `INSERT INTO fleet_commands (id, kiosk_id, kind, action, issued_by, reason, issued_at, expires_at, state, frame,
           delivered_at, kiosk_at, answered_at, refusal, result, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ...commandValues(c),
      );
      for (const h of c.history) {
        this.c.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES (?, ?, ?, ?, ?, ?)', c.id, h.at, h.from, h.to, h.event, h.detail);
      }
    });
  }

  getCommand(id: string): CommandRecord | undefined {
    const row = this.c.db.prepare('SELECT * FROM fleet_commands WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    if (!row) return undefined;
    return commandFromRow(row, this.c.many(commandHistoryFromRow, 'SELECT * FROM fleet_command_history WHERE command_id = ? ORDER BY seq', id));
  }

  transitionCommand(id: string, event: CommandEvent, at: number, patch: CommandPatch = {}, detail?: string): CommandRecord {
    return this.c.atomically(() => {
      const c = this.getCommand(id);
      if (!c) throw new StoreError(`command ${id} is not recorded`);
      const to = kioskCommand.next(c.state, event); // throws IllegalTransition: nothing written
      const next = { ...c, ...patch };
      const changed = this.c.run(
        `UPDATE fleet_commands SET state = ?, delivered_at = ?, kiosk_at = ?, answered_at = ?, refusal = ?, result = ?, message = ?
         WHERE id = ? AND state = ?`,
        to,
        ...commandAnswerValues(next),
        id,
        c.state,
      ).changes;
      if (changed === 0) throw new StoreError(`command ${id} changed while it was being moved`); // cannot happen under the lock
      this.c.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES (?, ?, ?, ?, ?, ?)', id, at, c.state, to, event, detail ?? null);
      return this.getCommand(id)!;
    });
  }

  noteCommand(id: string, at: number, detail: string): void {
    this.c.atomically(() => {
      const row = this.c.db.prepare('SELECT state FROM fleet_commands WHERE id = ?').get(id) as { state: string } | undefined;
      if (!row) throw new StoreError(`command ${id} is not recorded`);
      this.c.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES (?, ?, ?, ?, ?, ?)', id, at, row.state, row.state, 'note', detail);
    });
  }

  commandsOf(kioskId: string, limit = 50): CommandRecord[] {
    const ids = this.c.many((r) => r.id as string, 'SELECT id FROM fleet_commands WHERE kiosk_id = ? ORDER BY seq DESC LIMIT ?', kioskId, limit);
    return ids.map((id) => this.getCommand(id)!);
  }

  commandsIn(states: readonly CommandState[]): CommandRecord[] {
    if (states.length === 0) return [];
    const ids = this.c.many((r) => r.id as string, `SELECT id FROM fleet_commands WHERE state IN (${states.map(() => '?').join(', ')}) ORDER BY seq`, ...states);
    return ids.map((id) => this.getCommand(id)!);
  }

  setKioskPrices(kioskId: string, p: KioskPrices): void {
    this.c.run(
      `INSERT INTO fleet_kiosk_prices (kiosk_id, catalog, prices, command_id) VALUES (?, ?, ?, ?)
       ON CONFLICT(kiosk_id) DO UPDATE SET catalog = excluded.catalog, prices = excluded.prices, command_id = excluded.command_id`,
      kioskId,
      p.catalog ? JSON.stringify(p.catalog) : null,
      JSON.stringify(p.prices),
      p.commandId,
    );
  }

  kioskPrices(): Map<string, KioskPrices> {
    const rows = this.c.db.prepare('SELECT * FROM fleet_kiosk_prices ORDER BY kiosk_id').all() as Array<Record<string, unknown>>;
    return new Map(rows.map((r) => [r.kiosk_id as string, pricesFromRow(r)]));
  }
}
