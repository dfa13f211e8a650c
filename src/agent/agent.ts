import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Logger } from '../runtime/log.js';
import { createLogger } from '../runtime/log.js';
import { KeyboardButtons, NoButtons, SimButtons, type Buttons } from '../devices/buttons.js';
import { LogDisplay, NullDisplay, TerminalDisplay, type Display, type Screen } from '../devices/display.js';
import { SimDispenser, type Dispenser } from '../devices/dispenser.js';
import { parseAgentConfig, resolveToken, type AgentConfig, type AgentConfigInput } from './config.js';
import { ControlServer, type ControlRequest } from './control.js';
import { crashPoint } from './crash-hook.js';
import { Journal, type JournalEntry } from './journal.js';
import { RelayLink, type LinkState } from './relay-link.js';
import {
  VendSession,
  type CancelReason,
  type CancelResult,
  type SelectResult,
  type SessionStatus,
  type SessionTimings,
  type StateChange,
} from './session.js';

// Composition root: config -> journal, devices, relay link, vend session, control socket.
// Nothing else in the agent builds its own collaborators, so tests swap any of them.

export interface AgentDeps {
  logger?: Logger;
  buttons?: Buttons;
  display?: Display;
  dispenser?: Dispenser;
  /** screen durations (tests shorten them) */
  timings?: Partial<SessionTimings>;
  /** start the unix control socket (default true) */
  control?: boolean;
  /** backoff reset period of the relay link (default 30 s) */
  stableAfterMs?: number;
}

export interface AgentStatus extends SessionStatus {
  kioskId: string;
  agentVersion: string;
  relay: {
    url: string;
    state: LinkState;
    online: boolean;
    lastWelcomeAt: number | null;
    connectedSince: number | null;
  };
  startedAt: number;
  uptimeSeconds: number;
  controlSocket: string | null;
}

export interface Agent {
  readonly config: AgentConfig;
  select(slot: number): SelectResult;
  cancel(reason?: CancelReason): CancelResult;
  status(): AgentStatus;
  journal(limit?: number): JournalEntry[];
  on(event: 'state', listener: (change: StateChange) => void): this;
  on(event: 'screen', listener: (screen: Screen) => void): this;
  on(event: 'link', listener: (state: LinkState) => void): this;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: 'state' | 'screen' | 'link', listener: (...args: any[]) => void): this;
  once(event: 'state', listener: (change: StateChange) => void): this;
  once(event: 'screen', listener: (screen: Screen) => void): this;
  once(event: 'link', listener: (state: LinkState) => void): this;
  /** graceful stop: finishes a vend in progress, motors safe, link and DB closed */
  close(): Promise<void>;
}

export function agentVersion(): string {
  try {
    // src/agent/agent.ts and dist/agent/agent.js are both two levels below package.json
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function buildButtons(cfg: AgentConfig, logger: Logger): Buttons {
  switch (cfg.hardware.buttons.driver) {
    case 'keyboard':
      return new KeyboardButtons(process.stdin, logger);
    case 'sim':
      return new SimButtons();
    case 'none':
      return new NoButtons();
  }
}

function buildDisplay(cfg: AgentConfig, logger: Logger): Display {
  switch (cfg.hardware.display.driver) {
    case 'terminal':
      return new TerminalDisplay(process.stdout, { locale: cfg.locale });
    case 'log':
      return new LogDisplay(logger.child({ part: 'display' }));
    case 'none':
      return new NullDisplay();
  }
}

function buildDispenser(cfg: AgentConfig, logger: Logger): Dispenser {
  const d = cfg.hardware.dispenser;
  return new SimDispenser({
    pulseMs: d.pulseMs,
    dropWindowMs: d.dropWindowMs,
    maxPulses: d.maxPulses,
    fault: d.sim.fault,
    dropDelayMs: d.sim.dropDelayMs,
    slowDropMs: d.sim.slowDropMs,
    ...(d.sim.pulseLog ? { pulseLog: d.sim.pulseLog } : {}),
    onPulse: () => crashPoint('pulse'),
    logger: logger.child({ part: 'dispenser' }),
  });
}

class AgentImpl extends EventEmitter implements Agent {
  private readonly startedAt = Date.now();
  private closing: Promise<void> | undefined;
  control: ControlServer | undefined;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    readonly config: AgentConfig,
    private readonly db: Journal,
    private readonly link: RelayLink,
    private readonly session: VendSession,
    private readonly buttons: Buttons,
    private readonly display: Display,
    private readonly dispenser: Dispenser,
    private readonly logger: Logger,
  ) {
    super();
  }

  wire(): void {
    this.session.on('state', (c: StateChange) => this.emit('state', c));
    this.session.on('screen', (s: Screen) => this.emit('screen', s));
    this.link.on('state', (s: LinkState) => {
      this.emit('link', s);
      if (s !== 'online') this.session.onOffline();
    });
    this.link.on('welcome', (w) => this.session.onWelcome(w));
    this.unsubscribe.push(
      this.buttons.onPress((slot) => {
        const r = this.session.select(slot);
        if (!r.ok) this.logger.info({ slot, reason: r.reason }, `button ${slot}: ${r.message}`);
      }),
      this.buttons.onCancel(() => this.session.cancel('customer')),
    );
  }

  select(slot: number): SelectResult {
    return this.session.select(slot);
  }

  cancel(reason: CancelReason = 'customer'): CancelResult {
    return this.session.cancel(reason);
  }

  status(): AgentStatus {
    const now = Date.now();
    return {
      kioskId: this.config.kioskId,
      agentVersion: agentVersion(),
      ...this.session.status(),
      relay: {
        url: this.config.relay.url,
        state: this.link.state,
        online: this.link.online,
        lastWelcomeAt: this.link.lastWelcomeAt ?? this.db.loadWelcome()?.receivedAt ?? null,
        connectedSince: this.link.connectedSince ?? null,
      },
      startedAt: this.startedAt,
      uptimeSeconds: Math.floor((now - this.startedAt) / 1000),
      controlSocket: this.control?.path ?? null,
    };
  }

  journal(limit = 20): JournalEntry[] {
    return this.db.recent(limit);
  }

  async handleControl(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'status':
        return this.status();
      case 'select': {
        const slot = Number(req.args.slot);
        if (!Number.isInteger(slot) || slot <= 0) throw new Error('select needs a slot number: {"cmd":"select","args":{"slot":1}}');
        return this.select(slot);
      }
      case 'cancel':
        return this.cancel('technician');
      case 'journal': {
        const limit = req.args.limit === undefined ? 20 : Number(req.args.limit);
        if (!Number.isInteger(limit) || limit <= 0) throw new Error('journal limit must be a positive whole number');
        return this.journal(Math.min(limit, 1000));
      }
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const u of this.unsubscribe) u();
      this.buttons.close();
      await this.control?.close();
      // let a vend in progress finish and its result reach the outbox (and the relay if online)
      await this.session.close();
      await this.link.close();
      this.dispenser.safe();
      this.dispenser.close();
      this.display.close();
      this.db.close();
      this.logger.info('agent stopped');
    })();
    return this.closing;
  }
}

export async function startAgent(config: AgentConfig | AgentConfigInput, deps: AgentDeps = {}): Promise<Agent> {
  const cfg = parseAgentConfig(config);
  const logger = deps.logger ?? createLogger('agent');
  const token = resolveToken(cfg);
  const journal = new Journal(cfg.journal.path);
  let session: VendSession | undefined;
  try {
    journal.syncStock(cfg.slots);
    const link = new RelayLink({
      url: cfg.relay.url,
      token,
      kioskId: cfg.kioskId,
      agentVersion: agentVersion(),
      backoff: cfg.relay.backoff,
      pingIntervalSeconds: cfg.relay.pingIntervalSeconds,
      journal,
      logger,
      openOrders: () => session!.openOrdersForHello(),
      apply: (msg) => session!.apply(msg),
      ...(deps.stableAfterMs !== undefined ? { stableAfterMs: deps.stableAfterMs } : {}),
    });
    const display = deps.display ?? buildDisplay(cfg, logger);
    const dispenser = deps.dispenser ?? buildDispenser(cfg, logger);
    const buttons = deps.buttons ?? buildButtons(cfg, logger);
    session = new VendSession({
      config: cfg,
      journal,
      link,
      dispenser,
      display,
      logger,
      ...(deps.timings ? { timings: deps.timings } : {}),
    });
    const agent = new AgentImpl(cfg, journal, link, session, buttons, display, dispenser, logger);
    agent.wire();
    if (deps.control !== false) {
      // First, because it also tells us whether another agent is running on this kiosk: two
      // agents recovering the same journal could both pulse a paid order.
      try {
        agent.control = await ControlServer.start({
          path: cfg.control.socket,
          ...(cfg.control.group !== undefined ? { group: cfg.control.group } : {}),
          handler: (req) => agent.handleControl(req),
          logger: logger.child({ part: 'control' }),
        });
      } catch (err) {
        await agent.close();
        throw err;
      }
    }
    // settle the previous run's open orders before talking to the relay, so hello and the
    // outbox already tell the truth
    session.recover();
    session.onOffline();
    link.start();
    buttons.start();
    logger.info({ kioskId: cfg.kioskId, relay: cfg.relay.url, slots: cfg.slots.length }, 'agent started');
    return agent;
  } catch (err) {
    if (journal.db.open) journal.close();
    throw err;
  }
}
