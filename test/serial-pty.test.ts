import { afterEach, describe, expect, it } from 'vitest';
import { LinePort } from '../src/devices/serial/line-port.js';
import { SerialPanel, SERIAL_PANEL_DEFAULTS } from '../src/devices/serial/panel.js';
import { PanelTwin } from '../src/devices/serial/panel-twin.js';
import { captureLogger, nextEvent, tempDir } from './agent-helpers.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';

// The serial panel driver on the real serialport binding, talking to a simulated board through
// a pty pair made by socat. Killing socat is pulling the USB cable.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const { dir, cleanup } = tempDir('qrk-pty-');
  cleanups.push(cleanup);
  const pair = new PtyPair(dir);
  cleanups.push(() => pair.kill());
  await pair.start();
  const cap = captureLogger();
  const panel = new SerialPanel({
    ...SERIAL_PANEL_DEFAULTS,
    path: pair.a,
    heartbeatMs: 50,
    reconnect: { baseMs: 10, capMs: 50 },
    logger: cap.logger,
  });
  // the board's end of the cable: also a real serial port, also reconnecting
  const boardPort = new LinePort({ name: 'board', path: pair.b, baudRate: 115200, reconnect: { baseMs: 10, capMs: 50 } });
  const twin = new PanelTwin(boardPort);
  cleanups.push(() => panel.close(), () => boardPort.close(), () => twin.close());
  const opened = Promise.all([nextEvent(panel as never, 'link', (s) => s === 'open'), boardPort.whenOpen()]);
  panel.start();
  boardPort.start();
  await opened;
  // the board's heartbeat: the agent learns its boot id before any vend
  const heard = nextEvent<{ type: string }>(panel as never, 'message', (m) => m.type === 'HB');
  twin.startHeartbeat(25);
  await heard;
  return { pair, panel, twin, boardPort, cap };
}

describe.skipIf(skipPty)('serial panel over a socat pty pair', () => {
  it('selects and vends through a real serial port', async () => {
    const { panel, twin } = await setup();
    const press = new Promise<number>((resolve) => panel.buttons.onPress((s) => resolve(s)));
    twin.press(5);
    expect(await press).toBe(5);
    expect(await panel.dispenser.vend(5)).toEqual({ result: 'dispensed', pulses: 1 });
    expect(twin.vends.map((v) => v.slot)).toEqual([5]);
    expect(twin.rejected).toEqual([]); // every frame the agent wrote passed the board's checks
  });

  it('logs and ignores a garbled and a truncated line arriving over the wire', async () => {
    const { panel, boardPort, cap } = await setup();
    const presses: number[] = [];
    panel.buttons.onPress((s) => void presses.push(s));
    const last = nextEvent<{ type: string }>(panel as never, 'message', (m) => m.type === 'CAN');
    boardPort.write('#%&garbage from a bad ground');
    boardPort.write('$SEL,4*65'); // a frame cut short inside its checksum
    boardPort.write('$CAN*1F96');
    await last;
    expect(presses).toEqual([]);
    const reasons = cap.lines.filter((l) => String(l.msg).includes('ignored a garbled line')).map((l) => l.reason);
    expect(reasons).toEqual([expect.stringMatching(/no "\$"/), expect.stringMatching(/not 4 upper-case hex/)]);
  });

  it('survives an unplug: the port closes, reopens when the device is back, and presses flow again', async () => {
    const { pair, panel, twin, boardPort, cap } = await setup();
    const down = nextEvent(panel as never, 'link', (s) => s === 'down');
    await pair.kill();
    await down;
    expect(panel.health().port).toBe('waiting');
    await cap.waitFor((l) => String(l.msg).includes('lost (unplugged?)'));
    const back = Promise.all([nextEvent(panel as never, 'link', (s) => s === 'open'), nextEvent(boardPort as never, 'open')]);
    await pair.start();
    await back;
    const press = new Promise<number>((resolve) => panel.buttons.onPress((s) => resolve(s)));
    twin.press(2);
    expect(await press).toBe(2);
    expect(panel.health()).toMatchObject({ port: 'open', opens: 2, disconnects: 1 });
  });

  it('an unplug in the middle of a vend: the result comes after the reconnect, the motor runs once', async () => {
    const { pair, panel, twin, boardPort } = await setup();
    twin.swallowNextResult = true; // the RES is lost with the cable
    const vend = panel.dispenser.vend(3);
    await nextEvent(twin as never, 'swallowed');
    const down = nextEvent(panel as never, 'link', (s) => s === 'down');
    await pair.kill();
    await down;
    const boardBack = nextEvent(boardPort as never, 'open');
    await pair.start();
    await boardBack;
    // the agent sends VEND with the same id again; the board answers with the result it has
    expect(await vend).toEqual({ result: 'dispensed', pulses: 1 });
    expect(twin.vends).toHaveLength(1);
    const ids = new Set(twin.commands.filter((c) => c.startsWith('$VEND,')).map((c) => c.split(',')[1]));
    expect(ids.size).toBe(1);
  });
});
