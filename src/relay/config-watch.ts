import { statSync } from 'node:fs';
import type { Logger } from '../runtime/log.js';
import { loadRelayConfig, type RelayConfig } from './config.js';

// The operator changes a price in relay.yaml: the relay must not need a restart, and neither must
// the kiosks. The file's size and mtime are polled (works whatever editor replaced it, on any file
// system; the first look is taken here, synchronously, so an edit right after start is not taken
// for the baseline) and it is re-read on SIGHUP (systemctl reload). A file with a mistake is reported and ignored:
// the relay keeps selling with the catalog it had.

export interface CatalogWatch {
  /** reads the file now; resolves whether the catalog changed */
  reload(): boolean;
  close(): void;
}

export function watchConfigCatalog(
  path: string,
  current: RelayConfig,
  apply: (catalog: RelayConfig['catalog']) => void,
  logger: Logger,
  intervalMs = 1000,
): CatalogWatch {
  let catalogText = JSON.stringify(current.catalog);
  let rest = JSON.stringify({ ...current, catalog: undefined });
  const reload = (): boolean => {
    let next: RelayConfig;
    try {
      next = loadRelayConfig(path);
    } catch (err) {
      logger.error({ path }, `config ${path} changed but cannot be used, keeping the catalog in force: ${(err as Error).message}`);
      return false;
    }
    const nextRest = JSON.stringify({ ...next, catalog: undefined });
    if (nextRest !== rest) {
      rest = nextRest;
      logger.warn({ path }, `config ${path}: settings other than the catalog changed; restart the relay to apply them`);
    }
    const text = JSON.stringify(next.catalog);
    if (text === catalogText) return false;
    catalogText = text;
    apply(next.catalog);
    return true;
  };
  const look = (): string => {
    try {
      const st = statSync(path);
      return `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      return 'missing';
    }
  };
  let seen = look();
  const timer = setInterval(() => {
    const now = look();
    if (now === seen) return;
    seen = now;
    reload();
  }, intervalMs);
  timer.unref();
  const onHup = () => void reload();
  process.on('SIGHUP', onHup);
  return {
    reload,
    close() {
      clearInterval(timer);
      process.off('SIGHUP', onHup);
    },
  };
}
