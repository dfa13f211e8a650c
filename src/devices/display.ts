import type { Logger } from '../runtime/log.js';
import { FramebufferDisplay } from './display/framebuffer.js';
import type { Display } from './display/model.js';
import type { Rotation } from './display/surface.js';
import { LogDisplay, NullDisplay, TerminalDisplay } from './display/terminal.js';
import { WebDisplay } from './display/web.js';

// What the customer sees. The session decides WHICH screen (the model in display/model.ts); a
// Display only draws it. Renderers: terminal (half-block QR), framebuffer (pure TypeScript pixels
// on /dev/fbN), web (a local page for Chromium in kiosk mode), log, none. docs/display.md.

export { SCREENS, sameScreen, screenKey } from './display/model.js';
export type { Display, OutOfServiceReason, ProductLine, Screen, ScreenName } from './display/model.js';
export { describeScreen, LogDisplay, NullDisplay, renderQr, TerminalDisplay } from './display/terminal.js';
export { FramebufferDisplay, FramebufferError, readFbGeometry, type FrameEvent, type FramebufferOptions } from './display/framebuffer.js';
export { WebDisplay, type WebDisplayOptions } from './display/web.js';
export { viewOf, viewLines, type View } from './display/view.js';
export { ROTATIONS, type Rotation, type FbGeometry } from './display/surface.js';

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

/** Builds the configured display. Throws (naming the config key) when the framebuffer cannot be used. */
export function createDisplay(cfg: DisplayConfig, opts: { locale: string; logger: Logger; out?: NodeJS.WritableStream }): Display {
  const rotation = cfg.rotation ?? DISPLAY_DEFAULTS.rotation;
  switch (cfg.driver) {
    case 'terminal':
      return new TerminalDisplay((opts.out as NodeJS.WriteStream | undefined) ?? process.stdout, { locale: opts.locale });
    case 'log':
      return new LogDisplay(opts.logger);
    case 'none':
      return new NullDisplay();
    case 'framebuffer':
      return new FramebufferDisplay({
        device: cfg.framebuffer?.device ?? DISPLAY_DEFAULTS.framebuffer.device,
        ...(cfg.framebuffer?.sysfs ? { sysfs: cfg.framebuffer.sysfs } : {}),
        rotation,
        locale: opts.locale,
        logger: opts.logger,
      });
    case 'web':
      return new WebDisplay({
        host: cfg.web?.host ?? DISPLAY_DEFAULTS.web.host,
        port: cfg.web?.port ?? DISPLAY_DEFAULTS.web.port,
        rotation,
        locale: opts.locale,
        logger: opts.logger,
      });
  }
}
