import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadAgentConfig } from '../agent/config.js';
import { ControlError, ControlUnavailable } from '../agent/control.js';

// The plumbing every technician command shares: it talks to the running agent over the control
// socket, found by --socket, by the agent config's control.socket (--config) or at the default
// path, and prints --json or text. Exit codes: 0 ok, 1 refused/failed, 2 usage or agent unreachable.

export const DEFAULT_SOCKET = '/run/qrkiosk/agent.sock';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
};

const CONTROL_OPTIONS = {
  socket: { type: 'string', short: 's' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
} as const;

type Options = NonNullable<ParseArgsConfig['options']>;

export type ControlArgs<E extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: typeof CONTROL_OPTIONS & E; allowPositionals: true }>>;

/**
 * Parses --socket/--config/--json and the command's `extra` options (positionals allowed). A bad
 * argument is written to io.err as "qrkiosk <name>: <what>" followed by `usage`, and gives exit code 2.
 */
export function parseControlArgs<E extends Options>(name: string, argv: string[], io: Io, usage: string, extra: E): ControlArgs<E> | number {
  try {
    return parseArgs({ args: argv, options: { ...CONTROL_OPTIONS, ...extra }, allowPositionals: true });
  } catch (err) {
    io.err(`qrkiosk ${name}: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
}

/** The agent's control socket: --socket, else --config's control.socket, else the default; exit code 2 when the config cannot be read. */
export function controlSocket(values: { socket?: string | undefined; config?: string | undefined }, io: Io): string | number {
  let socket = values.socket;
  if (!socket && values.config) {
    try {
      socket = loadAgentConfig(values.config, { readToken: false }).control.socket;
    } catch (err) {
      io.err((err as Error).message);
      return 2;
    }
  }
  return socket ?? DEFAULT_SOCKET;
}

/** A failed control call as an exit code: 2 when the agent cannot be reached, 1 when it refused; anything else is rethrown. */
export function controlFailed(name: string, err: unknown, io: Io): number {
  if (err instanceof ControlUnavailable) {
    io.err(err.message);
    return 2;
  }
  if (err instanceof ControlError) {
    io.err(`qrkiosk ${name}: ${err.message}`);
    return 1;
  }
  throw err;
}
