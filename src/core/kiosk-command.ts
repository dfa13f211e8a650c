import { defineMachine } from './state-machine.js';

// An operator's command to one kiosk (put in/out of service, set stock, test vend, price or
// catalog change), signed by the relay (src/protocol/signed-command.ts). Two views of the same
// command, each a table: what the relay knows of it, and what the kiosk did with it.

// ---- the relay's view ---------------------------------------------------------------------------

export const COMMAND_STATES = [
  'issued', // signed and recorded; sent whenever the kiosk is connected, until its expiry
  'delivered', // the kiosk acked the frame: it has journaled the command (its verdict follows)
  'applied', // the kiosk applied it, at the time it reported
  'refused', // the kiosk would not: a bad or missing signature, a replay, invalid, busy
  'expired', // not delivered before its expiry (or the kiosk said it arrived expired)
] as const;
export type CommandState = (typeof COMMAND_STATES)[number];

export type CommandEvent =
  | 'ack' // the kiosk acked the frame
  | 'applied' // command.result applied
  | 'refused' // command.result refused (not for expiry), or command.refused (not a replay)
  | 'expired'; // the relay's expiry pass, or the kiosk refused it as expired

export const kioskCommand = defineMachine<CommandState, CommandEvent>('kiosk-command', {
  // an ack can be lost while the verdict arrives: issued -> applied/refused directly
  issued: { ack: 'delivered', applied: 'applied', refused: 'refused', expired: 'expired' },
  delivered: { applied: 'applied', refused: 'refused', expired: 'expired' },
  applied: {},
  refused: {},
  // "expired" at the relay means "no verdict by its expiry". A kiosk that took it just in time and
  // whose answer sat in its outbox while the link was down still reports it, and that verdict is
  // the truth: the kiosk only applies a command before its expiry.
  expired: { applied: 'applied', refused: 'refused' },
});

// ---- the kiosk's view ---------------------------------------------------------------------------

export const KIOSK_COMMAND_STATES = [
  'running', // verified and journaled, being applied (a test vend turns the motor)
  'applied',
  'refused', // verified but not applied: expired, not yet valid, invalid for this kiosk, busy
] as const;
export type KioskCommandState = (typeof KIOSK_COMMAND_STATES)[number];

export type KioskCommandEvent = 'done' | 'refuse' | 'interrupted';

export const kioskSideCommand = defineMachine<KioskCommandState, KioskCommandEvent>('kiosk-side-command', {
  // interrupted: the agent restarted while a test vend ran; it is not run again (the motor may
  // have turned) and is reported applied with an unknown result
  running: { done: 'applied', refuse: 'refused', interrupted: 'applied' },
  applied: {},
  refused: {},
});
