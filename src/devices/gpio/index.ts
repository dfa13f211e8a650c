export * from './types.js';
export * from './sysfs.js';
export { OnoffBackend, loadOnoff, type OnoffFactory, type OnoffGpio } from './onoff-backend.js';
export { OnoffTwin, type TwinWrite } from './onoff-twin.js';
export { LibgpiodBackend, parseMonitorLine, parseToolVersion, parseLineLocation, parseGetOutput, commands as libgpiodCommands } from './libgpiod-backend.js';
export { selectGpioBackend, type BackendChoice } from './select.js';
