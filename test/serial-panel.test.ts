import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SerialPanel, SERIAL_PANEL_DEFAULTS, type SerialPanelOptions } from '../src/devices/serial/panel.js';
import { PanelTwin, type PanelTwinOptions } from '../src/devices/serial/panel-twin.js';
import { encodePanel } from '../src/devices/serial/panel-protocol.js';
import { FaultLog } from '../src/devices/faults.js';
import { captureLogger, nextEvent } from './agent-helpers.js';
import { MockWire, resetMockPorts } from './helpers/mock-wire.js';

// The serial panel driver against a simulated board on a @serialport/binding-mock port.

const cleanups: Array<() => unknown> = [];
beforeEach(() => resetMockPorts());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let ids = 0;
async function setup(over: Partial<SerialPanelOptions> = {}, twinOpts: PanelTwinOptions = {}) {
  const wire = new MockWire('/dev/ttyPANEL');
  const cap = captureLogger();
  const panel = new SerialPanel({
    ...SERIAL_PANEL_DEFAULTS,
    path: wire.path,
    openPort: wire.openPort,
    reconnect: { baseMs: 5, capMs: 20 },
    logger: cap.logger,
    newId: () => `ID${++ids}`,
    ...over,
  });
  const twin = new PanelTwin(wire, twinOpts);
  cleanups.push(() => panel.close(), () => twin.close());
  panel.start();
  await wire.waitOpen();
  return { wire, panel, twin, cap };
}

describe('serial panel over binding-mock', () => {
  it('turns SEL into a press of that slot and CAN into a cancel, with heartbeats both ways', async () => {
    const { panel, twin, wire } = await setup({ heartbeatMs: 10 });
    const got: Array<number | string> = [];
    panel.buttons.onPress((slot, detail) => {
      got.push(slot);
      expect(detail).toEqual({ source: 'serial-panel' });
    });
    panel.buttons.onCancel(() => got.push('cancel'));
    const pressed = nextEvent<PanelMessageLike>(panel as never, 'message', (m) => m.type === 'CAN');
    twin.heartbeat();
    twin.press(3);
    twin.cancel();
    await pressed;
    expect(got).toEqual([3, 'cancel']);
    // the agent's heartbeat reaches the board as a checked frame
    expect(await wire.nextLine((l) => l.startsWith('$HB,'))).toMatch(/^\$HB,\d+\*[0-9A-F]{4}$/);
    expect(twin.rejected).toEqual([]);
    expect(panel.health()).toMatchObject({ panel: 'ok', boot: 'B007', port: 'open' });
  });

  it('vends: DROP -> dispensed, NODROP -> vend_failed, JAM -> jammed, NAK -> vend_failed with nothing moved', async () => {
    const outcomes = { 1: { result: 'DROP', pulses: 1 }, 2: { result: 'NODROP', pulses: 3 }, 3: { result: 'JAM', pulses: 2 } } as const;
    const { panel, twin } = await setup({}, { outcome: (s) => outcomes[s as 1 | 2 | 3], slots: [1, 2, 3] });
    expect(await panel.dispenser.vend(1)).toEqual({ result: 'dispensed', pulses: 1 });
    expect(await panel.dispenser.vend(2)).toEqual({ result: 'vend_failed', pulses: 3, detail: 'panel reports NODROP after 3 pulse(s)' });
    expect(await panel.dispenser.vend(3)).toEqual({ result: 'jammed', pulses: 2, detail: 'panel reports JAM after 2 pulse(s)' });
    expect(await panel.dispenser.vend(9)).toMatchObject({ result: 'vend_failed', pulses: 0, detail: expect.stringContaining('SLOT') });
    expect(twin.vends.map((v) => v.slot)).toEqual([1, 2, 3]);
  });

  it('refuses a second vend while one is open (one product per payment)', async () => {
    const { panel } = await setup({}, { vendMs: 30 });
    const first = panel.dispenser.vend(1);
    await expect(panel.dispenser.vend(2)).rejects.toThrow(/already vending/);
    expect(await first).toMatchObject({ result: 'dispensed' });
  });

  it('a lost ACK makes the agent repeat the same id, and the board still runs the motor once', async () => {
    // the result takes longer than the ACK timeout, so the lost ACK is noticed before the RES
    const { panel, twin, wire } = await setup({ ackTimeoutMs: 30 }, { vendMs: 120 });
    let dropped = 0;
    wire.dropToAgent = (l) => l.startsWith('$ACK') && dropped++ === 0;
    expect(await panel.dispenser.vend(2)).toEqual({ result: 'dispensed', pulses: 1 });
    const vends = twin.commands.filter((c) => c.startsWith('$VEND,'));
    expect(vends.length).toBe(2);
    expect(new Set(vends).size).toBe(1); // same id both times
    expect(twin.vends).toHaveLength(1);
  });

  it('gives up with vend_failed when the board never acknowledges', async () => {
    const { panel, twin } = await setup({ ackTimeoutMs: 10, maxSends: 3 });
    twin.mute = true;
    const r = await panel.dispenser.vend(1);
    expect(r).toMatchObject({ result: 'vend_failed', pulses: 0, detail: expect.stringMatching(/did not acknowledge the vend after 3 send/) });
    expect(twin.commands.filter((c) => c.startsWith('$VEND,'))).toHaveLength(3);
  });

  it('gives up when the board acknowledged but reports no result in time', async () => {
    const { panel, twin } = await setup({ resultTimeoutMs: 40 });
    twin.swallowNextResult = true;
    expect(await panel.dispenser.vend(1)).toMatchObject({ result: 'vend_failed', pulses: 0, detail: expect.stringMatching(/no result within 40 ms/) });
  });

  it('logs and ignores garbled and truncated lines; good frames around them still count', async () => {
    const { panel, wire, cap } = await setup();
    const presses: number[] = [];
    panel.buttons.onPress((s) => void presses.push(s));
    const done = nextEvent<PanelMessageLike>(panel as never, 'message', (m) => m.type === 'SEL' && m.slot === 4);
    wire.writeRaw('$SEL,3*1543\n'); // bad CRC
    wire.writeRaw('$SEL,3*15\n'); // truncated CRC
    wire.writeRaw('\x00\xff\xfe garbage\r\n'); // line noise
    wire.writeRaw('$SEL,1'); // a frame that lost its newline ...
    wire.writeRaw(`${encodePanel({ type: 'SEL', slot: 4 })}\n`); // ... does not spoil the next
    await done;
    expect(presses).toEqual([4]);
    const warned = cap.lines.filter((l) => String(l.msg).includes('ignored a garbled line')).map((l) => l.reason);
    expect(warned).toEqual([
      expect.stringMatching(/checksum mismatch/),
      expect.stringMatching(/not 4 upper-case hex/),
      expect.stringMatching(/no "\$"/),
      'noise before the frame start',
    ]);
    expect(panel.health().rejectedLines).toBe(4);
  });

  it('a line cut by an unplug is dropped, the port comes back, and a result lost with the cable is recovered once', async () => {
    const { panel, twin, wire, cap } = await setup();
    const heard = nextEvent<PanelMessageLike>(panel as never, 'message', (m) => m.type === 'HB');
    twin.heartbeat();
    await heard;
    twin.swallowNextResult = true;
    const vend = panel.dispenser.vend(2);
    await nextEvent(twin as never, 'swallowed');
    // half a frame, then the cable goes
    const arrived = nextEvent(panel.link as never, 'bytes');
    wire.writeRaw('$SEL,2*');
    await arrived;
    const reopened = wire.opens;
    await wire.unplug();
    await cap.waitFor((l) => l.reason === 'truncated by a disconnect');
    await wire.waitOpen();
    // nothing is re-sent until the board proves it is the same power-on (it still knows the id)
    expect(twin.commands.filter((c) => c.startsWith('$VEND,'))).toHaveLength(1);
    twin.heartbeat();
    // the VEND goes again with the same id, the board answers from memory
    expect(await vend).toEqual({ result: 'dispensed', pulses: 1 });
    expect(wire.opens).toBe(reopened + 1);
    expect(twin.vends).toHaveLength(1);
    expect(new Set(twin.commands.filter((c) => c.startsWith('$VEND,'))).size).toBe(1);
    expect(panel.health()).toMatchObject({ disconnects: 1, opens: 2 });
  });

  it('a board that comes back from an unplug with a new boot id is never asked again: outcome unknown', async () => {
    const { panel, twin, wire } = await setup();
    const heard = nextEvent<PanelMessageLike>(panel as never, 'message', (m) => m.type === 'HB');
    twin.heartbeat();
    await heard;
    twin.swallowNextResult = true;
    const vend = panel.dispenser.vend(1);
    await nextEvent(twin as never, 'swallowed');
    await wire.unplug();
    await wire.waitOpen();
    twin.reboot('D00D'); // USB-powered: the unplug was a power cycle, every id forgotten
    twin.heartbeat();
    expect(await vend).toMatchObject({ result: 'vend_failed', pulses: 0, detail: expect.stringMatching(/restarted during the vend/) });
    expect(twin.commands.filter((c) => c.startsWith('$VEND,'))).toHaveLength(1);
    expect(twin.vends).toHaveLength(1);
  });

  it('a reconnect during a vend before the board ever said its boot id: outcome unknown, not re-sent', async () => {
    const { panel, twin, wire } = await setup();
    twin.swallowNextResult = true;
    const vend = panel.dispenser.vend(1);
    await nextEvent(twin as never, 'swallowed');
    await wire.unplug();
    await wire.waitOpen();
    twin.heartbeat();
    expect(await vend).toMatchObject({ result: 'vend_failed', detail: expect.stringMatching(/never said its boot id/) });
    expect(twin.commands.filter((c) => c.startsWith('$VEND,'))).toHaveLength(1);
  });

  it('a board that restarts in the middle of a vend makes the outcome unknown: vend_failed, not retried', async () => {
    const { panel, twin } = await setup();
    twin.heartbeat();
    twin.swallowNextResult = true;
    const vend = panel.dispenser.vend(1);
    await nextEvent(twin as never, 'swallowed');
    twin.reboot('C0DE');
    twin.heartbeat();
    expect(await vend).toMatchObject({ result: 'vend_failed', pulses: 0, detail: expect.stringMatching(/restarted during the vend/) });
    expect(twin.vends).toHaveLength(1);
  });

  it('reports a silent board (port open, no heartbeat) and recovers when it talks again', async () => {
    const { panel, twin, cap } = await setup({ heartbeatMs: 10, heartbeatTimeoutMs: 40 });
    twin.heartbeat();
    await cap.waitFor((l) => String(l.msg).includes('serial panel silent'));
    expect(panel.health().panel).toBe('silent');
    twin.heartbeat('SENSOR');
    await cap.waitFor((l) => String(l.msg).includes('talking again'));
    expect(panel.health()).toMatchObject({ panel: 'fault', panelStatus: 'SENSOR' });
  });

  it('keeps the link open until both faces are closed (the agent closes buttons first, dispenser last)', async () => {
    const { panel } = await setup();
    panel.buttons.close();
    expect(panel.link.state).toBe('open');
    expect(panel.closing).toBeUndefined();
    panel.dispenser.close();
    await panel.closing;
    expect(panel.link.state).toBe('closed');
  });

  it('reports an unplug as a fault condition while it lasts, and describes itself for qrkiosk hardware', async () => {
    const faults = new FaultLog();
    const { panel, wire, twin } = await setup({ faults });
    twin.heartbeat('OK');
    await nextEvent<PanelMessageLike>(panel as never, 'message', (m) => m.type === 'HB');
    expect(panel.buttons.describe()).toMatchObject({ role: 'buttons', driver: 'serial-panel', status: 'ok', detail: expect.stringContaining('board B007 OK') });
    const cleared = new Promise((resolve) => faults.once('cleared', resolve));
    const down = nextEvent(panel as never, 'link', (s) => s === 'down');
    await wire.unplug();
    await down;
    expect(faults.active()).toEqual([expect.objectContaining({ device: 'serial panel /dev/ttyPANEL', kind: 'disconnected', active: true })]);
    expect(panel.dispenser.describe()).toMatchObject({ role: 'dispenser', status: 'disconnected' });
    await cleared;
    expect(faults.active()).toEqual([]);
    expect(faults.recent()).toHaveLength(1);
  });
});

type PanelMessageLike = { type: string; slot?: number };
