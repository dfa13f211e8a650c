import { unwatchFile, watchFile } from 'node:fs';
import type { Logger } from '../runtime/log.js';
import { loadRelayConfig, type RelayConfig } from './config.js';

// The operator changes a price in relay.yaml: the relay must not need a restart, and neither must
// the kiosks. The file is polled (fs.watchFile: works whatever editor replaced it, on any file
// system) and re-read on SIGHUP (systemctl reload). A file with a mistake is reported and ignored:
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
  const onChange = () => void reload();
  watchFile(path, { interval: intervalMs, persistent: false }, onChange);
  const onHup = () => void reload();
  process.on('SIGHUP', onHup);
  return {
    reload,
    close() {
      unwatchFile(path, onChange);
      process.off('SIGHUP', onHup);
    },
  };
}
