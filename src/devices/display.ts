import type { Logger } from '../runtime/log.js';
import { FramebufferDisplay } from './display/framebuffer.js';
import type { Display } from './display/model.js';
import { buildDisplay, type DisplayConfig, type DisplayOpenOptions } from './display/open.js';
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

export { DISPLAY_DEFAULTS, openDisplay, type DisplayConfig } from './display/open.js';

/** Builds the configured display. Throws (naming the config key) when the framebuffer cannot be used. */
export function createDisplay(cfg: DisplayConfig, opts: DisplayOpenOptions): Display {
  // every renderer is already loaded here (this module re-exports them); the agent uses openDisplay
  return buildDisplay(cfg, opts, { TerminalDisplay, LogDisplay, NullDisplay, FramebufferDisplay, WebDisplay });
}
