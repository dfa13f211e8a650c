import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Io } from './control-client.js';

// The technician and installer commands read their arguments the same way: unknown or malformed
// options are a usage error (exit 2, the message and the usage), --help prints the usage (exit 0).

type Options = NonNullable<ParseArgsConfig['options']>;

/** The parsed arguments, or the exit code when the command must stop here (help, bad option). */
export function commandArgs<O extends Options>(name: string, argv: string[], options: O, usage: string, io: Io) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...options, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    io.err(`qrkiosk ${name}: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if ((parsed.values as { help?: boolean }).help) {
    io.out(usage);
    return 0;
  }
  return parsed;
}
