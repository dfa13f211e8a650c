import { EventEmitter } from 'node:events';
import type { LineEnd } from '../serial/line-port.js';
import { parseBoardCommand } from './qibixx.js';

// A simulated Qibixx board in cashless-slave mode plus the vending machine behind it, speaking
// the board's text protocol on any line link (the far end of a pty pair, a binding-mock port).
// It follows the session sequences of the Qibixx documentation: enable -> INACTIVE, DISABLED,
// ENABLED; a selection -> c,STATUS,VEND,<price>,<item>; C,VEND -> the machine vends and reports
// c,VEND,SUCCESS or c,ERR,VEND 3, then c,STATUS,IDLE; C,STOP -> the request is dropped.
// Card-first: C,START,<funds> opens a session (c,STATUS,IDLE,<funds>) in which the customer may
// choose; C,STOP ends it (c,STATUS,ENABLED). C,SETCONF answers c,SET,OK unless the parameter is
// in `refuse` (an older firmware that cannot be the second cashless device). A machine that gives
// up (giveUp) leaves the vend at once: an approval that arrives afterwards is a violation and
// vends nothing, like a real VMC that is no longer waiting.
// X,1 turns the board's sniffer on (x,ACK): the next enable then also prints the MDB setup
// exchange as the board's sniffer does (bus-setup.ts): the VMC's SETUP config data, the reader's
// config data (built from the C,SETCONF values this board took, else the defaults a Qibixx board
// announces: level 3, currency 0x1756, scale factor 1, 2 decimal places, 30 s) and the VMC's
// max/min prices (`vmc`, in the reader's units as the VMC computes them from its own decimal
// point: a machine set for other decimal places sends them scaled by a power of ten).

export type MachineOutcome = 'success' | 'fail' | 'silent';

export class QibixxTwin extends EventEmitter {
  state: 'off' | 'INACTIVE' | 'DISABLED' | 'ENABLED' | 'IDLE' | 'VEND' = 'off';
  /** the open request */
  request: { price: string; item: number } | null = null;
  /** what the machine does when approved */
  outcome: MachineOutcome = 'success';
  /** products that actually left the machine: the tests count these to prove "once" */
  readonly dispensed: Array<{ item: number; price: string }> = [];
  readonly approvals: string[] = [];
  readonly denials: number[] = [];
  readonly commands: string[] = [];
  /** commands that made no sense in the state they arrived in */
  readonly violations: string[] = [];
  /** C,SETCONF parameters received, and those this board refuses */
  readonly setconf = new Map<string, string>();
  refuse = new Set<string>();
  /** parameters this board acknowledges (c,SET,OK) but does not apply: it keeps announcing its default */
  ignore = new Set<string>();
  /** card-first: the funds of the open session, null = no session */
  session: string | null = null;
  readonly starts: string[] = [];
  /**
   * The approval crosses the VMC's own timeout on the wire: by the time C,VEND arrives the
   * machine has given up (c,STATUS,ENABLED), so it vends nothing.
   */
  giveUpBeforeApproval = false;
  /** X,1 received */
  sniffing = false;
  /** false: a firmware without the sniffer, which ignores X,1 */
  hasSniffer = true;
  /** a board that reports c,STATUS,INACTIVE when disabled (C,0) */
  reportsDisable = false;
  /** the VMC's side of setup: its feature level and max/min prices in bus units (0xffff / 0 = not said) */
  vmc = { level: 3, max: 0xffff, min: 0 };
  /** the reader config data a board announces when nothing was set */
  readonly readerDefaults = { level: 3, currencyCode: '0x1756', scaleFactor: 1, decimalPlaces: 2, maxResponse: 30, options: 0x08 };
  private clock = 14_000_000;
  /** the VMC reset the reader and sets it up once the sniffer is on (so the test sees the exchange) */
  private setupPending = false;

  constructor(private readonly end: LineEnd) {
    super();
    end.on('line', (l) => this.onLine(l));
  }

  /** A line from the board as it is (late results, odd reports). */
  say(line: string): void {
    this.end.write(line);
  }

  /** The customer presses an item on the machine's keypad. */
  select(item: number, price: string): void {
    this.request = { price, item };
    this.state = 'VEND';
    this.say(`c,STATUS,VEND,${price},${item}`);
  }

  /** The customer presses cancel on the machine (or the machine stops waiting for credit). */
  machineCancel(): void {
    this.request = null;
    this.state = 'IDLE';
    this.say('c,STATUS,IDLE');
  }

  /** The VMC's own timeout: it stops waiting for approval and ends the session. */
  giveUp(): void {
    this.request = null;
    this.session = null;
    this.state = 'ENABLED';
    this.say('c,STATUS,ENABLED');
  }

  /** Card-first: the customer chooses inside the open session (the VMC checks the funds). */
  selectInSession(item: number, price: string): boolean {
    if (this.session === null || Number(price) > Number(this.session)) return false;
    this.select(item, price);
    return true;
  }

  /** The board loses its C,SETCONF values (power blip while the Pi's port stays open). */
  forgetSetup(): void {
    this.setconf.clear();
  }

  /**
   * The VMC resets the reader (its own power cycle) and sets it up again: INACTIVE, then the setup
   * exchange (printed only once the sniffer is on, so the driver is given the chance to turn it
   * on, as the VMC's polls before the setup give a real one), DISABLED, ENABLED.
   */
  vmcReset(): void {
    this.request = null;
    this.session = null;
    this.state = 'INACTIVE';
    this.say('c,STATUS,INACTIVE');
    if (this.sniffing) this.finishReset();
    else this.setupPending = true;
  }

  private finishReset(): void {
    this.setupPending = false;
    this.setupExchange();
    this.state = 'ENABLED';
    this.say('c,STATUS,ENABLED');
  }

  /** What the board announces as reader config data (its C,SETCONF values over its defaults). */
  readerConfig(): { level: number; currencyCode: string; scaleFactor: number; decimalPlaces: number; maxResponse: number; options: number } {
    const d = this.readerDefaults;
    const num = (k: string, dflt: number) => (this.setconf.has(k) ? Number(this.setconf.get(k)) : dflt);
    return {
      ...d,
      currencyCode: (this.setconf.get('mdb-currency-code') as string | undefined) ?? d.currencyCode,
      scaleFactor: num('mdb-scale-factor', d.scaleFactor),
      decimalPlaces: num('mdb-decimal-places', d.decimalPlaces),
    };
  }

  /** One sniffer line, as the board prints a block it saw on the bus. */
  private sniff(from: 'vmc' | 'peripheral', command: number | null, data: string): void {
    this.clock += 1094;
    const t = String(this.clock).padStart(10, '0');
    this.say(from === 'vmc' ? (command === null ? `x,00,${t},${data}` : `x,00,${t},${command.toString(16).padStart(2, '0')},${data}`) : `x,80,${t},${data}`);
  }

  /** The VMC sets the reader up: reset, poll (just reset), config data, max/min prices. */
  private setupExchange(): void {
    const base = this.setconf.get('mdb-addr') === '0x60' ? 0x60 : 0x10;
    const hex = (n: number, bytes: number) => n.toString(16).padStart(bytes * 2, '0');
    const r = this.readerConfig();
    this.sniff('vmc', base, '');
    this.sniff('peripheral', null, 'ACK');
    this.sniff('vmc', base | 2, '');
    this.sniff('peripheral', null, '00');
    this.sniff('vmc', null, 'ACK');
    this.sniff('vmc', base | 1, `00${hex(this.vmc.level, 1)}000000`);
    const cc = r.currencyCode.replace(/^0x/i, '').padStart(4, '0');
    this.sniff('peripheral', null, `01${hex(r.level, 1)}${cc}${hex(r.scaleFactor, 1)}${hex(r.decimalPlaces, 1)}${hex(r.maxResponse, 1)}${hex(r.options, 1)}`);
    this.sniff('vmc', null, 'ACK');
    this.state = 'DISABLED';
    this.say('c,STATUS,DISABLED');
    // prices beyond 16 bits: a level 3 machine with 32-bit money, which repeats the currency
    const wide = this.vmc.max > 0xffff || this.vmc.min > 0xffff;
    this.sniff('vmc', base | 1, wide ? `01${hex(this.vmc.max, 4)}${hex(this.vmc.min, 4)}${cc}` : `01${hex(this.vmc.max, 2)}${hex(this.vmc.min, 2)}`);
    this.sniff('peripheral', null, 'ACK');
  }

  /** The VMC asks to put credit back on the reader (revalue). */
  askRevalue(amount: string): void {
    this.say(`c,STATUS,REVALUE,${amount}`);
  }

  private onLine(line: string): void {
    this.commands.push(line);
    this.emit('command', line);
    const c = parseBoardCommand(line);
    switch (c.kind) {
      case 'enable':
        if (!c.on) {
          this.state = 'off';
          if (this.reportsDisable) this.say('c,STATUS,INACTIVE');
          return;
        }
        // the VMC sets the reader up and enables it
        this.state = 'INACTIVE';
        this.say('c,STATUS,INACTIVE');
        if (this.sniffing) this.setupExchange();
        else {
          this.state = 'DISABLED';
          this.say('c,STATUS,DISABLED');
        }
        this.state = 'ENABLED';
        this.say('c,STATUS,ENABLED');
        return;
      case 'approve': {
        const r = this.request;
        if (this.state === 'VEND' && r && this.giveUpBeforeApproval) {
          this.giveUp();
          this.violations.push(`${line} after the machine gave up`);
          return;
        }
        if (this.state !== 'VEND' || !r) {
          this.violations.push(`${line} with no open request`);
          return;
        }
        this.approvals.push(c.price);
        this.request = null;
        if (this.outcome === 'silent') return;
        if (this.outcome === 'success') {
          this.dispensed.push({ item: r.item, price: r.price });
          this.say('c,VEND,SUCCESS');
        } else this.say('c,ERR,VEND 3');
        this.state = 'IDLE';
        this.say(this.session !== null ? `c,STATUS,IDLE,${this.session}` : 'c,STATUS,IDLE');
        return;
      }
      case 'deny':
        if (this.request) this.denials.push(this.request.item);
        this.request = null;
        if (this.session !== null) {
          // ends the card-first session
          this.session = null;
          this.state = 'ENABLED';
          this.say('c,STATUS,ENABLED');
          return;
        }
        this.state = 'IDLE';
        this.say('c,STATUS,IDLE');
        return;
      case 'start':
        if (this.state !== 'ENABLED') {
          this.violations.push(`${line} while ${this.state}`);
          return;
        }
        this.starts.push(c.funds);
        this.session = c.funds;
        this.state = 'IDLE';
        this.say(`c,STATUS,IDLE,${c.funds}`);
        return;
      case 'setconf':
        if (this.state !== 'off') this.violations.push(`${line} while enabled (send C,0 first)`);
        if (this.refuse.has(c.param)) {
          this.say(`c,ERR,SETCONF ${c.param}`);
          return;
        }
        if (!this.ignore.has(c.param)) this.setconf.set(c.param, c.value);
        this.say('c,SET,OK');
        return;
      case 'sniff':
        if (!this.hasSniffer) return;
        this.sniffing = c.on;
        this.say('x,ACK');
        if (c.on && this.setupPending) this.finishReset();
        return;
      case 'other':
        this.violations.push(`unknown command ${line}`);
        return;
    }
  }
}
