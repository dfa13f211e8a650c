// Public surface of the EMVCo QR codec. Pure functions only: no I/O, safe on the kiosk and the relay.
export { crc16, crc16Hex } from './crc.js';
export {
  EmvError,
  charLength,
  decodeEmv,
  decodeTlv,
  encodeEmv,
  encodeTlv,
  findField,
  isTemplateId,
  type DecodeTlvOptions,
  type EmvErrorCode,
  type EmvField,
  type EmvInputField,
} from './tlv.js';
export {
  MERCADOPAGO_GUI,
  MERCADOPAGO_GUI_UPPER,
  MERCADOPAGO_PIX_HOST,
  MERCADOPAGO_TEMPLATE_ID,
  PIX_GUI,
  PIX_TEMPLATE_ID,
  MP_QR_LIMITS,
  buildMercadoPagoOrderQr,
  buildMercadoPagoQr,
  parseMercadoPagoQr,
  type MercadoPagoOrderQrInput,
  type MercadoPagoQrData,
  type MercadoPagoQrInput,
  type QrInitiation,
} from './mercadopago.js';
