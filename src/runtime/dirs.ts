import { mkdirSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';

/** A folder the program needs cannot be created; the message names it and what to do. */
export class DirectoryError extends Error {
  override name = 'DirectoryError';
}

/**
 * `mkdir -p` one component at a time. Node's recursive mkdirSync loops for ever on some paths
 * (under /proc, mkdir keeps answering ENOENT), which left the agent hanging without a word.
 * `what` says what the folder is for ("the folder of the journal"); `fix` is appended to errors.
 */
export function ensureDir(dir: string, what: string, fix = ''): void {
  const abs = resolve(dir);
  let cur = '';
  for (const part of abs.split(sep).filter(Boolean)) {
    cur = `${cur}${sep}${part}`;
    try {
      if (statSync(cur).isDirectory()) continue;
      throw new DirectoryError(`cannot create ${what} ${abs}: ${cur} exists and is not a folder${fix}`);
    } catch (err) {
      if (err instanceof DirectoryError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new DirectoryError(`cannot create ${what} ${abs}: ${(err as Error).message}${fix}`);
      }
    }
    try {
      mkdirSync(cur);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new DirectoryError(
        `cannot create ${what} ${abs}: ${(err as Error).message} (create it: sudo mkdir -p ${abs}, owned by the service user)${fix}`,
      );
    }
  }
}
