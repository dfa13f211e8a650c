// The encoder alone of the `qrcode` package (what its main module re-exports as `create`):
// importing it directly leaves out the PNG, SVG and terminal renderers and pngjs, which a kiosk's
// screens never use. @types/qrcode types only the main module.
declare module 'qrcode/lib/core/qrcode.js' {
  import type { QRCode, QRCodeOptions } from 'qrcode';
  export function create(text: string, options?: QRCodeOptions): QRCode;
}
