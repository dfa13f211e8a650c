import { EmvError, parseMercadoPagoQr } from '../emv/index.js';

// The kiosk decodes every QR before it shows it. A QR that a wallet would refuse (bad CRC, broken
// structure) or that would charge another amount than the order's must never reach the screen:
// a customer who pays it gets nothing, or pays the wrong price. Mercado Pago's own per-order QRs
// carry no amount (the app reads it online), so only a QR that states one is compared.

export interface QrExpectation {
  amount: number;
  currency: string;
}

/** Undefined when the QR may be shown; otherwise why not, in words a technician can act on. */
export function qrProblem(payload: string, expect: QrExpectation): string | undefined {
  let qr;
  try {
    qr = parseMercadoPagoQr(payload);
  } catch (err) {
    if (err instanceof EmvError) return `the payment QR is not valid (${err.message})`;
    throw err;
  }
  if (qr.currency !== expect.currency) return `the payment QR is in ${qr.currency}, the order in ${expect.currency}`;
  if (qr.amountMinor !== undefined && qr.amountMinor !== expect.amount) {
    return `the payment QR charges ${qr.amountMinor} minor units of ${qr.currency}, the order costs ${expect.amount}`;
  }
  return undefined;
}
