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
import {
  commandAnswerValues,
  commandFromRow,
  commandHistoryFromRow,
  commandValues,
  fleetPresenceFromRow,
  pricesFromRow,
  refillFromRow,
  refusalFromRow,
  statusFromRow,
  REFUSALS_KEPT,
} from '../recorder-rows.js';
import type { Row } from '../rows.js';
import { StoreError } from '../types.js';
import { isUniqueViolation, type PgConn } from './conn.js';

// The fleet recorder's tables (migration 8) on PostgreSQL: the kiosks' reports and the
// operator's commands. transitionCommand locks the command's row, checks the move against
// core/kiosk-command.ts and writes the new state with its history row in one transaction.

export class PgFleet implements FleetRecorder {
  constructor(private readonly c: PgConn) {}

  /** fn on this module bound to a transaction: the caller's when there is one, else a new one. */
  private atomic<T>(fn: (tx: PgFleet) => Promise<T>): Promise<T> {
    return this.c.atomic((c) => fn(c === this.c ? this : new PgFleet(c)));
  }

  async saveStatus(s: StoredStatus): Promise<void> {
    await this.c.run(
      `INSERT INTO fleet_status (kiosk_id, status, received_at) VALUES ($1, $2, $3)
       ON CONFLICT (kiosk_id) DO UPDATE SET status = excluded.status, received_at = excluded.received_at`,
      s.kioskId,
      JSON.stringify(s.status),
      s.receivedAt,
    );
  }

  statuses(): Promise<StoredStatus[]> {
    return this.c.many(statusFromRow, 'SELECT * FROM fleet_status ORDER BY kiosk_id');
  }

  async setPresence(p: Presence): Promise<void> {
    await this.c.run(
      `INSERT INTO fleet_presence (kiosk_id, online, since) VALUES ($1, $2, $3)
       ON CONFLICT (kiosk_id) DO UPDATE SET online = excluded.online, since = excluded.since`,
      p.kioskId,
      p.online ? 1 : 0,
      p.since,
    );
  }

  presences(): Promise<Presence[]> {
    return this.c.many(fleetPresenceFromRow, 'SELECT * FROM fleet_presence ORDER BY kiosk_id');
  }

  async recordRefill(r: RefillRecord): Promise<boolean> {
    // ON CONFLICT DO NOTHING: two instances receiving the same re-sent frame keep it once
    const n = await this.c.run(
      'INSERT INTO fleet_refills (refill_id, kiosk_id, at, by_whom, slots, received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (refill_id) DO NOTHING',
      r.refillId,
      r.kioskId,
      r.at,
      r.by,
      JSON.stringify(r.slots),
      r.receivedAt,
    );
    return n > 0;
  }

  refills(kioskId?: string, limit = 50): Promise<RefillRecord[]> {
    return this.c.many(refillFromRow, 'SELECT * FROM fleet_refills WHERE ($1::text IS NULL OR kiosk_id = $1) ORDER BY received_at DESC, refill_id DESC LIMIT $2', kioskId ?? null, limit);
  }

  async recordRefusal(r: CommandRefusalRecord): Promise<void> {
    await this.c.atomic(async (c) => {
      const rows = await c.rows(
        'INSERT INTO fleet_refusals (kiosk_id, frame_id, command_id, reason, message, ours, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq',
        [r.kioskId, r.frameId, r.commandId, r.reason, r.message, r.ours ? 1 : 0, r.receivedAt],
      );
      // a flood of forged frames must not grow the database without bound
      await c.run('DELETE FROM fleet_refusals WHERE seq <= $1', (rows[0]!.seq as number) - REFUSALS_KEPT);
    });
  }

  refusals(kioskId?: string, limit = 50): Promise<CommandRefusalRecord[]> {
    return this.c.many(refusalFromRow, 'SELECT * FROM fleet_refusals WHERE ($1::text IS NULL OR kiosk_id = $1) ORDER BY seq DESC LIMIT $2', kioskId ?? null, limit);
  }

  async insertCommand(cmd: CommandRecord): Promise<void> {
    await this.c.atomic(async (c) => {
      try {
        await c.run(
          `INSERT INTO fleet_commands (id, kiosk_id, kind, action, issued_by, reason, issued_at, expires_at, state, frame,
             delivered_at, kiosk_at, answered_at, refusal, result, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
          ...commandValues(cmd),
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw new StoreError(`command ${cmd.id} exists already`);
        throw err;
      }
      for (const h of cmd.history) {
        await c.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES ($1, $2, $3, $4, $5, $6)', cmd.id, h.at, h.from, h.to, h.event, h.detail);
      }
    });
  }

  private async commandWith(row: Row): Promise<CommandRecord> {
    return commandFromRow(row, await this.c.many(commandHistoryFromRow, 'SELECT * FROM fleet_command_history WHERE command_id = $1 ORDER BY seq', row.id));
  }

  async getCommand(id: string): Promise<CommandRecord | undefined> {
    const row = (await this.c.rows('SELECT * FROM fleet_commands WHERE id = $1', [id]))[0];
    return row ? this.commandWith(row) : undefined;
  }

  transitionCommand(id: string, event: CommandEvent, at: number, patch: CommandPatch = {}, detail?: string): Promise<CommandRecord> {
    return this.atomic(async (tx) => {
      // the row lock: another instance moving the same command waits, then reads our result
      const row = (await tx.c.rows('SELECT * FROM fleet_commands WHERE id = $1 FOR UPDATE', [id]))[0];
      if (!row) throw new StoreError(`command ${id} is not recorded`);
      const c = await tx.commandWith(row);
      const to = kioskCommand.next(c.state, event); // throws IllegalTransition: nothing written
      const next = { ...c, ...patch };
      await tx.c.run(
        `UPDATE fleet_commands SET state = $1, delivered_at = $2, kiosk_at = $3, answered_at = $4, refusal = $5, result = $6, message = $7
         WHERE id = $8 AND state = $9`,
        to,
        ...commandAnswerValues(next),
        id,
        c.state,
      );
      await tx.c.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES ($1, $2, $3, $4, $5, $6)', id, at, c.state, to, event, detail ?? null);
      return (await tx.getCommand(id))!;
    });
  }

  async noteCommand(id: string, at: number, detail: string): Promise<void> {
    await this.c.atomic(async (c) => {
      const row = (await c.rows('SELECT state FROM fleet_commands WHERE id = $1 FOR UPDATE', [id]))[0];
      if (!row) throw new StoreError(`command ${id} is not recorded`);
      await c.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES ($1, $2, $3, $4, $5, $6)', id, at, row.state, row.state, 'note', detail);
    });
  }

  async commandsOf(kioskId: string, limit = 50): Promise<CommandRecord[]> {
    const rows = await this.c.rows('SELECT * FROM fleet_commands WHERE kiosk_id = $1 ORDER BY seq DESC LIMIT $2', [kioskId, limit]);
    const out: CommandRecord[] = [];
    for (const r of rows) out.push(await this.commandWith(r));
    return out;
  }

  async commandsIn(states: readonly CommandState[]): Promise<CommandRecord[]> {
    const rows = await this.c.rows('SELECT * FROM fleet_commands WHERE state = ANY($1::text[]) ORDER BY seq', [[...states]]);
    const out: CommandRecord[] = [];
    for (const r of rows) out.push(await this.commandWith(r));
    return out;
  }

  async setKioskPrices(kioskId: string, p: KioskPrices): Promise<void> {
    await this.c.run(
      `INSERT INTO fleet_kiosk_prices (kiosk_id, catalog, prices, command_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kiosk_id) DO UPDATE SET catalog = excluded.catalog, prices = excluded.prices, command_id = excluded.command_id`,
      kioskId,
      p.catalog ? JSON.stringify(p.catalog) : null,
      JSON.stringify(p.prices),
      p.commandId,
    );
  }

  async kioskPrices(): Promise<Map<string, KioskPrices>> {
    const rows = await this.c.rows('SELECT * FROM fleet_kiosk_prices ORDER BY kiosk_id');
    return new Map(rows.map((r) => [r.kiosk_id as string, pricesFromRow(r)]));
  }
}
