import type { Readable } from 'node:stream';
import type { Logger } from '../runtime/log.js';
import type { Buttons } from '../devices/buttons.js';
import type { Dispenser } from '../devices/dispenser.js';
import { EvdevButtons } from '../devices/evdev-buttons.js';
import { FaultLog, type Fault } from '../devices/faults.js';
import { GpioButtons } from '../devices/gpio-buttons.js';
import { GpioDispenser } from '../devices/gpio-dispenser.js';
import type { OnoffFactory } from '../devices/gpio/onoff-backend.js';
import { selectGpioBackend } from '../devices/gpio/select.js';
import type { GpioBackend, GpioReport } from '../devices/gpio/types.js';
import { HidButtons, type HidApi } from '../devices/hid-buttons.js';
import { isDescribable, type DeviceReport } from '../devices/report.js';
import { openSerialDevices } from '../devices/serial/build.js';
import type { OpenPort } from '../devices/serial/line-port.js';
import type { AgentConfig } from './config.js';

// Opens the physical hardware the config describes — the GPIO backend (once, shared by buttons
// and dispenser), GPIO/HID/evdev buttons, the GPIO dispenser — and answers `qrkiosk hardware`.
// Simulated and keyboard devices stay with the agent's own builders; this module only handles the
// drivers that touch pins and devices. Anything opened is closed again if a later part fails, so
// a start-up error never leaves a motor output or a gpiomon child behind.

export interface HardwareDeps {
  /** an already open GPIO backend (tests: OnoffBackend over OnoffTwin) */
  gpio?: GpioBackend;
  /** the onoff Gpio constructor for the onoff backend (tests: OnoffTwin.factory) */
  onoffFactory?: OnoffFactory;
  /** node-hid stand-in */
  hid?: () => HidApi;
  /** evdev device opener stand-in */
  evdevOpen?: (path: string) => Readable;
  /** serial port opener for the serial panel and the MDB interface (tests: binding-mock) */
  serialPort?: OpenPort;
  /** environment of the libgpiod tools (tests: stand-ins first on PATH) */
  gpioEnv?: NodeJS.ProcessEnv;
}

export interface HardwareReport {
  profile: { name: string; source: string; description?: string } | null;
  gpio: GpioReport | null;
  devices: DeviceReport[];
  faults: { active: Fault[]; recent: Fault[] };
}

type ButtonsCfg = AgentConfig['hardware']['buttons'];
type DispenserCfg = AgentConfig['hardware']['dispenser'];

/** BCM pins the GPIO drivers of this config use (empty: no GPIO backend needed). */
export function gpioPins(cfg: AgentConfig, skip: { buttons?: boolean; dispenser?: boolean } = {}): number[] {
  const pins: number[] = [];
  const b: ButtonsCfg = cfg.hardware.buttons;
  if (!skip.buttons && b.driver === 'gpio') {
    pins.push(...Object.values(b.pins));
    if (b.cancel !== undefined) pins.push(b.cancel);
  }
  const d: DispenserCfg = cfg.hardware.dispenser;
  if (!skip.dispenser && d.driver === 'gpio') {
    pins.push(...Object.values(d.motors.pins), d.sensor.pin, ...Object.values(d.feedback?.pins ?? {}));
  }
  return pins;
}

export class Hardware {
  constructor(
    readonly faults: FaultLog,
    readonly gpio: GpioBackend | undefined,
    readonly buttons: Buttons | undefined,
    readonly dispenser: Dispenser | undefined,
    private readonly ownsGpio: boolean,
  ) {}

  report(cfg: AgentConfig, buttons: Buttons, dispenser: Dispenser, display?: unknown): HardwareReport {
    const generic = (role: string, driver: string, detail: string): DeviceReport => ({ role, driver, status: 'ok', detail });
    const devices: DeviceReport[] = [
      isDescribable(buttons) ? buttons.describe() : generic('buttons', cfg.hardware.buttons.driver, 'no pins (simulated, keyboard or control socket)'),
      isDescribable(dispenser)
        ? dispenser.describe()
        : generic('dispenser', cfg.hardware.dispenser.driver, cfg.hardware.dispenser.driver === 'sim' ? 'simulated motor and drop sensor' : ''),
      // the framebuffer says whether it can unblank the panel
      ...(isDescribable(display) ? [display.describe()] : []),
    ];
    return {
      profile: cfg.hardware.profile ?? null,
      gpio: this.gpio ? this.gpio.describe() : null,
      devices,
      faults: { active: this.faults.active(), recent: this.faults.recent(20) },
    };
  }

  /** buttons and dispenser are closed by the agent; this stops the GPIO backend it opened */
  async close(): Promise<void> {
    if (this.ownsGpio) await this.gpio?.close();
  }
}

export async function openHardware(
  cfg: AgentConfig,
  opts: {
    logger: Logger;
    deps?: HardwareDeps;
    /** the agent already has these (tests inject them): do not open their hardware */
    have?: { buttons?: boolean; dispenser?: boolean };
    onPulse?: (slot: number, pulse: number) => void;
  },
): Promise<Hardware> {
  const { logger } = opts;
  const deps = opts.deps ?? {};
  const log = logger.child({ part: 'hardware' });
  const faults = new FaultLog(log);
  const pins = gpioPins(cfg, opts.have);
  let gpio = deps.gpio;
  const ownsGpio = !deps.gpio;
  let buttons: Buttons | undefined;
  let dispenser: Dispenser | undefined;
  try {
    if (!gpio && pins.length > 0) {
      const g = cfg.hardware.gpio;
      gpio = await selectGpioBackend({
        backend: g?.backend ?? 'auto',
        pins,
        ...(g?.sysfsRoot ? { sysfsRoot: g.sysfsRoot } : {}),
        ...(g?.chipLabel ? { chipLabel: g.chipLabel } : {}),
        ...(g?.lineNames ? { lineNames: Object.fromEntries(Object.entries(g.lineNames).map(([k, v]) => [Number(k), v])) } : {}),
        ...(deps.onoffFactory ? { onoffFactory: deps.onoffFactory } : {}),
        ...(deps.gpioEnv ? { env: deps.gpioEnv } : {}),
        logger: log,
        faults,
      });
    }
    // outputs first: the motors are driven to their safe level before anything else happens
    const d = cfg.hardware.dispenser;
    if (!opts.have?.dispenser && d.driver === 'gpio') {
      dispenser = await GpioDispenser.open(gpio!, d, {
        faults,
        logger: logger.child({ part: 'dispenser' }),
        ...(opts.onPulse ? { onPulse: opts.onPulse } : {}),
      });
    }
    const b = cfg.hardware.buttons;
    if (!opts.have?.buttons) {
      const blog = logger.child({ part: 'buttons' });
      if (b.driver === 'gpio') buttons = await GpioButtons.open(gpio!, b, faults, blog);
      else if (b.driver === 'hid') buttons = new HidButtons(b, deps.hid, faults, blog);
      else if (b.driver === 'evdev') buttons = new EvdevButtons(b, deps.evdevOpen, faults, blog);
    }
    // serial panel / MDB machine: one device behind both faces (src/devices/serial/build.ts)
    const serial = openSerialDevices(cfg.hardware, {
      have: { buttons: opts.have?.buttons === true || buttons !== undefined, dispenser: opts.have?.dispenser === true || dispenser !== undefined },
      logger,
      faults,
      ...(deps.serialPort ? { openPort: deps.serialPort } : {}),
    });
    buttons ??= serial.buttons;
    dispenser ??= serial.dispenser;
  } catch (err) {
    buttons?.close();
    dispenser?.close();
    if (ownsGpio) await gpio?.close().catch(() => {});
    throw err;
  }
  return new Hardware(faults, gpio, buttons, dispenser, ownsGpio);
}
