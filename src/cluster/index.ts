/** The local cluster: `strata up`, `down` and `status`, and the component subcommands. */
export { apiserverCommand } from './apiserver.js';
export { componentMissing, componentModules, runComponent } from './components.js';
export {
  type Backend,
  type ClusterPlan,
  type ClusterTarget,
  type UpOptions,
  clusterDefaults,
  planCluster,
  resolveTarget,
  targetFlags,
} from './config.js';
export { type DownResult, type Progress, down } from './down.js';
export { ClusterError, type ClusterErrorCode } from './errors.js';
export { type ClusterRecord, locateCluster, logFile, readRecord, statePaths } from './state.js';
export { type ClusterStatus, formatStatus, isHealthy, status } from './status.js';
export { type UpRun, up } from './up.js';
