/** The controller: what the CLI and tests import. */
export { controllerCommand, controllerUsage } from './command.js';
export {
  type AllocationOptions,
  ControllerConfigError,
  type ControllerName,
  controllerNames,
} from './config.js';
export { type Controller, type ControllerOptions, runController } from './controller.js';
export { managedBy, managedByLabel, serviceNameLabel } from './endpoint-slices.js';
export { podTemplateHashLabel } from './deployment-controller.js';
