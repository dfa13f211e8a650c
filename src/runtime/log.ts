import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

// One JSON line per event on stderr (journald keeps it), so stdout stays free for the human
// screens of the demo and the technician commands.
export function createLogger(
  name: string,
  opts: { level?: string; destination?: DestinationStream } = {},
): Logger {
  const level = opts.level ?? process.env.QRKIOSK_LOG_LEVEL ?? 'info';
  return pino({ name, level, base: { part: name } }, opts.destination ?? pino.destination(2));
}

/** A logger that writes nothing: for library use and unit tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
