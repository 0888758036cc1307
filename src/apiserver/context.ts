/** What every request handler works with. */
import type { Store } from '../store/store.js';
import type { NamespaceLifecycle } from './namespaces.js';
import type { NodePorts } from './node-ports.js';
import type { ServiceIps } from './service-ips.js';

export interface WatchSettings {
  /** How often a watch that allows bookmarks gets one (upstream: about once a minute). */
  bookmarkIntervalMs: number;
  /** How long a watch without `timeoutSeconds` lasts (kube-apiserver's --min-request-timeout). */
  defaultTimeoutSeconds: number;
  /** A watcher that lets this much output pile up unread is dropped; it resumes from its last resourceVersion. */
  maxBufferedBytes: number;
}

export interface ApiContext {
  store: Store;
  namespaces: NamespaceLifecycle;
  watch: WatchSettings;
  /** Cluster IP allocation, when the server was given a service CIDR. */
  serviceIps?: ServiceIps;
  /** Node port allocation for NodePort Services, from the node port range. */
  nodePorts: NodePorts;
  /** Ends every open watch stream (on shutdown). */
  openWatches: Set<() => void>;
}
