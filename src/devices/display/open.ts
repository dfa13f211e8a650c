import type { Logger } from '../../runtime/log.js';
import type { FramebufferDisplay } from './framebuffer.js';
import type { Display } from './model.js';
import type { Rotation } from './surface.js';
import type { LogDisplay, NullDisplay, TerminalDisplay } from './terminal.js';
import type { WebDisplay } from './web.js';

// Builds the display a config names. openDisplay imports only that renderer's module: the agent
// on a framebuffer kiosk never loads the web renderer's HTTP server or the terminal's QR art, and
// one on a web kiosk never decodes the framebuffer font (bench/README.md, agent idle RSS).

/** The `hardware.display` section of the agent config (kept structural: devices do not import the agent). */
export interface DisplayConfig {
  driver: 'terminal' | 'log' | 'none' | 'framebuffer' | 'web';
  rotation?: Rotation;
  framebuffer?: { device?: string; sysfs?: string };
  web?: { host?: string; port?: number };
}

export const DISPLAY_DEFAULTS = {
  rotation: 0 as Rotation,
  framebuffer: { device: '/dev/fb0' },
  web: { host: '127.0.0.1', port: 8090 },
};

export interface DisplayOpenOptions {
  locale: string;
  logger: Logger;
  out?: NodeJS.WritableStream;
}

export interface Renderers {
  TerminalDisplay?: typeof TerminalDisplay;
  LogDisplay?: typeof LogDisplay;
  NullDisplay?: typeof NullDisplay;
  FramebufferDisplay?: typeof FramebufferDisplay;
  WebDisplay?: typeof WebDisplay;
}

/** The one place a display config becomes a renderer, given the renderer classes. */
export function buildDisplay(cfg: DisplayConfig, opts: DisplayOpenOptions, r: Renderers): Display {
  const rotation = cfg.rotation ?? DISPLAY_DEFAULTS.rotation;
  switch (cfg.driver) {
    case 'terminal':
      return new r.TerminalDisplay!((opts.out as NodeJS.WriteStream | undefined) ?? process.stdout, { locale: opts.locale });
    case 'log':
      return new r.LogDisplay!(opts.logger);
    case 'none':
      return new r.NullDisplay!();
    case 'framebuffer':
      return new r.FramebufferDisplay!({
        device: cfg.framebuffer?.device ?? DISPLAY_DEFAULTS.framebuffer.device,
        ...(cfg.framebuffer?.sysfs ? { sysfs: cfg.framebuffer.sysfs } : {}),
        rotation,
        locale: opts.locale,
        logger: opts.logger,
      });
    case 'web':
      return new r.WebDisplay!({
        host: cfg.web?.host ?? DISPLAY_DEFAULTS.web.host,
        port: cfg.web?.port ?? DISPLAY_DEFAULTS.web.port,
        rotation,
        locale: opts.locale,
        logger: opts.logger,
      });
  }
}

/** Builds the configured display, loading only its renderer. Throws (naming the config key) when the framebuffer cannot be used. */
export async function openDisplay(cfg: DisplayConfig, opts: DisplayOpenOptions): Promise<Display> {
  let r: Renderers;
  if (cfg.driver === 'framebuffer') r = { FramebufferDisplay: (await import('./framebuffer.js')).FramebufferDisplay };
  else if (cfg.driver === 'web') r = { WebDisplay: (await import('./web.js')).WebDisplay };
  else r = await import('./terminal.js');
  return buildDisplay(cfg, opts, r);
}
