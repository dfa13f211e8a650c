import type { Catalog } from '../core/catalog.js';
import type { CommandRefused, CommandResult, KioskStatus, StockRefill } from '../protocol/messages.js';
import type { Logger } from '../runtime/log.js';
import { commandKeyPath, loadOrCreateCommandKey, type CommandSigner } from './command-key.js';
import type { RelayConfig } from './config.js';
import { FleetStatus } from './fleet-status.js';
import type { FleetRecorder } from './fleet-recorder.js';
import { KioskCommands, type CommandLink } from './kiosk-commands.js';

// The kiosk side of the operator's console at the relay: the signing key, the commands, the
// fleet status, and the few hooks the hub needs (src/relay/hub.ts calls ConsoleFrames). Built
// before the hub (the welcome names the signing key and carries each kiosk's confirmed prices),
// attached to it once it exists.

/** The agent frames of the console (docs/console-kiosk.md). */
export type ConsoleAgentMessage = KioskStatus | StockRefill | CommandResult | CommandRefused;

/** What the hub calls. Reliable frames (stock.refill, command.result) are acked once onFrame resolves. */
export interface ConsoleFrames {
  onFrame(kioskId: string, msg: ConsoleAgentMessage): Promise<void>;
  /** an ack the hub's own outbox did not know: true when it was for a command */
  onAck(kioskId: string, ackId: string): boolean;
}

/** The hub as the console sees it. */
export interface ConsoleHub extends CommandLink {
  setConsole(frames: ConsoleFrames): void;
  on(event: 'online' | 'offline', listener: (kioskId: string) => void): unknown;
}

export interface KioskConsoleOptions {
  config: Pick<RelayConfig, 'commands' | 'store'>;
  logger: Logger;
  now: () => number;
  /** where reports and commands are kept: the relay store (it implements FleetRecorder) */
  recorder: FleetRecorder;
  kioskExists(kioskId: string): boolean | Promise<boolean>;
}

export class KioskConsole implements ConsoleFrames {
  readonly commands: KioskCommands;
  readonly fleet: FleetStatus;
  readonly signer: CommandSigner;
  readonly recorder: FleetRecorder;
  private hub: ConsoleHub | undefined;
  private presentElsewhere: ((kioskId: string) => boolean) | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: KioskConsoleOptions) {
    this.log = opts.logger.child({ part: 'console' });
    const path = commandKeyPath(opts.config);
    const { signer, created } = loadOrCreateCommandKey(path);
    if (created) {
      this.log.info({ path, keyId: signer.keyId }, `made the command signing key ${path}; write in every kiosk's agent.yaml: relay.commandKey: ${signer.publicKeyText}`);
    }
    this.signer = signer;
    this.recorder = opts.recorder;
    this.commands = new KioskCommands({
      recorder: this.recorder,
      signer,
      logger: opts.logger,
      now: opts.now,
      ttlMs: opts.config.commands.ttlSeconds * 1000,
      kioskExists: opts.kioskExists,
    });
    // online: connected here, or to another live relay instance (the gate every other part uses)
    this.fleet = new FleetStatus({ recorder: this.recorder, isOnline: (id) => (this.hub?.isOnline(id) ?? false) || (this.presentElsewhere?.(id) ?? false), logger: opts.logger, now: opts.now });
  }

  /** Loads what the recorder kept (confirmed prices, commands waiting), before kiosks connect. */
  load(): Promise<void> {
    return this.commands.load();
  }

  attach(hub: ConsoleHub): void {
    this.hub = hub;
    this.commands.attach(hub);
    hub.setConsole(this);
    hub.on('online', (kioskId) => {
      void this.fleet.onPresence(kioskId, true).catch((err: unknown) => this.log.error({ err, kioskId }, 'could not record the kiosk online'));
      void (async () => {
        // prices confirmed through another relay instance: the welcome just sent may lack them
        if (await this.commands.refreshPrices(kioskId)) await hub.rewelcome(kioskId);
        await this.commands.resend(kioskId);
      })().catch((err: unknown) => this.log.error({ err, kioskId }, `could not refresh prices or re-send commands to kiosk ${kioskId}`));
    });
    hub.on('offline', (kioskId) => {
      void this.fleet.onPresence(kioskId, false).catch((err: unknown) => this.log.error({ err, kioskId }, 'could not record the kiosk offline'));
    });
  }

  /**
   * Whether a kiosk is connected to another relay instance (relay/fleet/presence.ts isPresent):
   * the fleet starts after the console, so it is told here.
   */
  setPresence(isPresent: (kioskId: string) => boolean): void {
    this.presentElsewhere = isPresent;
  }

  /** The kiosk's prices: the relay's catalog with the ones the kiosk confirmed applying. */
  catalogFor(kioskId: string, base: Catalog): Catalog {
    return this.commands.catalogFor(kioskId, base);
  }

  /**
   * The periodic pass (the relay's one-second tick): commands recorded by the CLI or another
   * instance are picked up and sent, commands past their expiry stop being sent.
   */
  tick(): void {
    // one pass at a time: a slow store must not pile passes up
    if (this.passing) return;
    this.passing = true;
    void (async () => {
      await this.commands.pickUp();
      await this.commands.expireDue();
    })()
      .catch((err: unknown) => this.log.error({ err }, `command pass (pick up, expiry) failed: ${(err as Error).message}`))
      .finally(() => {
        this.passing = false;
      });
  }
  private passing = false;

  onFrame(kioskId: string, msg: ConsoleAgentMessage): Promise<void> {
    switch (msg.type) {
      case 'kiosk.status':
        return this.fleet.onStatus(kioskId, msg);
      case 'stock.refill':
        return this.fleet.onRefill(kioskId, msg).then(() => undefined);
      case 'command.result':
        return this.commands.onResult(kioskId, msg);
      case 'command.refused':
        return this.commands.onRefused(kioskId, msg).then(async (ours) => {
          await this.recorder.recordRefusal({
            kioskId,
            frameId: msg.frameId,
            commandId: msg.commandId ?? null,
            reason: msg.reason,
            message: msg.message,
            ours,
            receivedAt: this.opts.now(),
          });
        });
    }
  }

  onAck(kioskId: string, ackId: string): boolean {
    return this.commands.onAck(kioskId, ackId);
  }
}
