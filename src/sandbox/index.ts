// Local Mercado Pago emulator that also plays the customer's app. For demos and end-to-end tests.
export { startSandbox } from './server.js';
export { connectSandbox, SandboxRemoteError } from './remote.js';
export { SandboxError } from './core.js';
export { webhookSignature, appendQuery } from './notify.js';
export { interpretPosAnswer, V1_NOT_READY_TYPES, V2_NOT_READY_DETAILS, type PosAnswer, type ReadyOrder } from './pos-answer.js';
export type * from './types.js';
