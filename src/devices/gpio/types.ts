// One small GPIO interface with two backends: onoff (sysfs, in-process) and the libgpiod command
// line tools (character device, long-lived child processes). Everything above it (buttons, motor
// relays, drop sensors) speaks physical levels on BCM-numbered pins and never knows which backend
// runs, so a kernel that drops sysfs GPIO only changes `gpio.backend`.
//
// Levels here are PHYSICAL (what a voltmeter shows). "Active low" is decided one layer up, where
// the meaning lives (a button to GND is pressed at 0, many relay boards energise at 0): keeping the
// backends dumb keeps the two of them identical in behaviour and easy to compare in tests.

export type Level = 0 | 1;

/** Pull resistor for an input. sysfs cannot set one (see WIRING.md); libgpiod can. */
export type Pull = 'up' | 'down' | 'none' | 'as-is';

export interface InputSpec {
  /** BCM number of the header pin (GPIO17 = 17) */
  bcm: number;
  pull: Pull;
  /** what the pin is for, in logs and `qrkiosk hardware` ("slot 1 button", "drop sensor") */
  role: string;
}

export interface OutputSpec {
  bcm: number;
  /** the level at which the load is OFF: driven at open, after every pulse, at close and on exit */
  safeLevel: Level;
  /**
   * Hard maximum a pulse (or any non-safe level) may last, whatever the caller asks. A motor left
   * on by a bug strips the spiral or burns the coil; this is the last line of defence.
   */
  maxPulseMs: number;
  role: string;
}

export interface GpioInput {
  readonly bcm: number;
  readonly role: string;
  /** where the backend found the pin: "sysfs gpio529", "gpiochip0 17" */
  readonly where: string;
  /** the last level the backend knows */
  level(): Level;
  /** called on every level change the backend sees (not debounced); returns unsubscribe */
  onChange(listener: (level: Level) => void): () => void;
  /**
   * called on every EDGE the kernel reported, with the level it went to, even when the level
   * afterwards is the same as before: a 2 ms pulse that the backend saw as one late interrupt is
   * two edges here (to the other level and back), never nothing. For inputs where a short event
   * matters (a product crossing the drop sensor's beam); returns unsubscribe.
   */
  onEdge(listener: (level: Level) => void): () => void;
}

export interface GpioOutput {
  readonly bcm: number;
  readonly role: string;
  readonly where: string;
  readonly safeLevel: Level;
  level(): Level;
  /** drives the non-safe level for ms (clamped to maxPulseMs), then the safe level; resolves after */
  pulse(ms: number): Promise<void>;
  /** drives the safe level now (stop) */
  safe(): Promise<void>;
}

export interface GpioProcessInfo {
  pid: number | undefined;
  command: string;
  role: string;
  restarts: number;
}

export interface GpioReport {
  backend: 'onoff' | 'libgpiod';
  /** one line for the technician: chip, base, tool version */
  detail: string;
  /** why this backend was chosen (auto) or that it was configured */
  reason?: string;
  warnings: string[];
  pins: Array<{ bcm: number; role: string; where: string; mode: 'in' | 'out'; level: Level; pull?: Pull }>;
  processes?: GpioProcessInfo[];
}

export interface GpioBackend {
  readonly kind: 'onoff' | 'libgpiod';
  input(spec: InputSpec): Promise<GpioInput>;
  output(spec: OutputSpec): Promise<GpioOutput>;
  describe(): GpioReport;
  /** every output to its safe level, inputs released, child processes stopped */
  close(): Promise<void>;
}

/** A GPIO problem a technician must read: names the pin, the cause and the fix. */
export class GpioError extends Error {
  override name = 'GpioError';
}

/** `GPIO17`: the line name Raspberry Pi device trees give header pins on Pi 3, 4 and 5. */
export function defaultLineName(bcm: number): string {
  return `GPIO${bcm}`;
}
