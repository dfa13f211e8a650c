// What a device driver tells `qrkiosk hardware` and `qrkiosk test buttons` about itself. These are
// optional capabilities on top of the Buttons/Dispenser interfaces: the agent asks for them with
// the type guards below, so drivers that do not offer them (sim, keyboard, other engineers' new
// drivers until they add them) keep working unchanged.

export interface DeviceLine {
  /** what it does: "slot 1", "cancel", "motor slot 2", "drop sensor" */
  function: string;
  /** how the technician finds it: "GPIO17 (pin 11)", "byte 5 mask 0x10", "KEY_KP1" */
  name: string;
  /** where the driver reached it: "gpiochip0 17", "sysfs gpio529", "/dev/hidraw0" */
  where: string;
  /** current state in words: "pressed", "released", "off", "beam clear" */
  state?: string;
}

export interface DeviceReport {
  /** buttons, dispenser, printer ... */
  role: string;
  driver: string;
  status: 'ok' | 'fault' | 'disconnected';
  /** one line: device path and ids, pulse settings ... */
  detail: string;
  lines?: DeviceLine[];
}

export interface Describable {
  describe(): DeviceReport;
}

export function isDescribable(x: unknown): x is Describable {
  return typeof x === 'object' && x !== null && typeof (x as { describe?: unknown }).describe === 'function';
}

/** A debounced input changed state (the live `qrkiosk test buttons` view). */
export interface InputEvent {
  at: number;
  /** "slot 3 (GPIO22)", "KEY_KP3", "byte 5 mask 0x40" */
  input: string;
  function: string;
  state: 'down' | 'up';
  /** raw level changes the debounce swallowed on the way (a worn contact shows here) */
  bounces: number;
}

export interface InputObservable {
  onInput(listener: (e: InputEvent) => void): () => void;
}

export function observesInputs(x: unknown): x is InputObservable {
  return typeof x === 'object' && x !== null && typeof (x as { onInput?: unknown }).onInput === 'function';
}
