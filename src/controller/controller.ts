/**
 * The controller process, as kube-controller-manager runs its controllers:
 * one shared informer per kind (list + watch + cache), each controller's
 * event handlers queueing object keys, and each controller's workers
 * reconciling keys from its own queue once every informer has synced, so no
 * controller acts on a partial view (the node IPAM controller above all:
 * it must see every assigned CIDR before it hands one out).
 */
import type { ResourceType } from '../api/types.js';
import { ApiClient, type ApiTarget } from '../client/index.js';
import { informerPodSource } from '../mesh/ca-service/pods.js';
import { type CaServiceConfig, openCaService } from '../mesh/ca-service/service.js';
import {
  type AllocationOptions,
  type ControllerName,
  type NodeLifecycleOptions,
  enabledControllers,
  nodeLifecycleSettings,
  podCidrAllocators,
  serviceIpAllocators,
} from './config.js';
import { DeploymentController } from './deployment-controller.js';
import { EndpointSliceController } from './endpoint-slice-controller.js';
import { Informer } from '../client/informer.js';
import { NodeIpamController } from './node-ipam.js';
import { NodeLifecycleController } from './node-lifecycle.js';
import * as kinds from './resources.js';
import { Scheduler } from './scheduler.js';
import { ServiceIpController } from './service-ips.js';
import { type ReconcileResult, type WorkQueue, runWorkers } from './work-queue.js';

export interface ControllerOptions extends AllocationOptions, NodeLifecycleOptions {
  /** The API server: `unix:///path/api.sock`, a socket path, `http://host:port`, or a client. */
  api: ApiTarget | ApiClient;
  /** Where log lines go; stderr with a timestamp by default. */
  log?: (line: string) => void;
  /** The mesh's CA service (src/mesh/ca-service/), served once the pod cache is filled; off when unset. */
  ca?: CaServiceConfig;
}

export interface Controller {
  /** The controllers running. */
  readonly controllers: readonly ControllerName[];
  /** Stops taking work, lets syncs in flight finish, and closes the watches. */
  stop(): Promise<void>;
}

interface Reconciler {
  readonly name: string;
  readonly queue: WorkQueue;
  reconcile(key: string): Promise<ReconcileResult | undefined>;
  /** Periodic work of its own, started once the caches are filled. */
  start?(): void;
  stop?(): void;
}

function stderrLog(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** Starts the controllers; resolves once their caches are filled and their workers run. */
export async function runController(options: ControllerOptions): Promise<Controller> {
  const enabled = enabledControllers(options);
  const podCidrs = enabled.has('node-ipam') ? podCidrAllocators(options) : [];
  const serviceIps = enabled.has('service-ip')
    ? serviceIpAllocators(options.serviceCidr ?? '')
    : [];
  const lifecycle = enabled.has('node-lifecycle') ? nodeLifecycleSettings(options) : undefined;
  const log = options.log ?? stderrLog;
  const ownClient = !(options.api instanceof ApiClient);
  const client = options.api instanceof ApiClient ? options.api : new ApiClient(options.api);

  const informers = new Map<ResourceType, Informer>();
  const informer = (resource: ResourceType): Informer => {
    let found = informers.get(resource);
    if (!found) {
      found = new Informer(client, resource, log);
      informers.set(resource, found);
    }
    return found;
  };
  // Controllers register their handlers before the informers start, so the
  // initial listing reaches them as additions.
  const reconcilers: { reconciler: Reconciler; workers: number }[] = [];
  if (enabled.has('node-ipam')) {
    const reconciler = new NodeIpamController(client, informer(kinds.nodes), podCidrs, log);
    reconcilers.push({ reconciler, workers: 1 });
  }
  if (enabled.has('service-ip')) {
    const reconciler = new ServiceIpController(client, informer(kinds.services), serviceIps, log);
    reconcilers.push({ reconciler, workers: 1 });
  }
  if (enabled.has('scheduler')) {
    const reconciler = new Scheduler(client, informer(kinds.pods), informer(kinds.nodes), log);
    reconcilers.push({ reconciler, workers: 1 });
  }
  if (enabled.has('deployment')) {
    const reconciler = new DeploymentController(
      client,
      informer(kinds.deployments),
      informer(kinds.pods),
      log,
    );
    reconcilers.push({ reconciler, workers: 4 });
  }
  if (enabled.has('endpointslice')) {
    const reconciler = new EndpointSliceController(
      client,
      informer(kinds.services),
      informer(kinds.pods),
      informer(kinds.endpointSlices),
      log,
    );
    reconcilers.push({ reconciler, workers: 4 });
  }
  if (lifecycle) {
    const reconciler = new NodeLifecycleController(
      client,
      informer(kinds.nodes),
      informer(kinds.pods),
      lifecycle,
      log,
    );
    reconcilers.push({ reconciler, workers: 2 });
  }

  // The CA opens before anything starts (a broken CA directory fails the
  // controller at once) and serves once the pod cache it authorizes from is filled.
  let caService: Awaited<ReturnType<typeof openCaService>> | undefined;
  if (options.ca !== undefined) {
    try {
      caService = await openCaService(
        options.ca,
        informerPodSource(informer(kinds.pods), client),
        log,
      );
    } catch (error) {
      for (const { reconciler } of reconcilers) reconciler.queue.shutDown();
      if (ownClient) client.close();
      throw error;
    }
  }

  const stopInformers = async (): Promise<void> => {
    await Promise.all([...informers.values()].map((i) => i.stop()));
    if (ownClient) client.close();
  };
  try {
    await Promise.all([...informers.values()].map((i) => i.start()));
    await caService?.listen();
  } catch (error) {
    for (const { reconciler } of reconcilers) reconciler.queue.shutDown();
    await caService?.service.close();
    await stopInformers();
    throw error;
  }
  for (const { reconciler } of reconcilers) reconciler.start?.();
  const running = reconcilers.map(({ reconciler, workers }) =>
    runWorkers(reconciler.name, reconciler.queue, (key) => reconciler.reconcile(key), workers, log),
  );
  const names = reconcilers.map(({ reconciler }) => reconciler.name as ControllerName);
  log(`controller: running ${names.join(', ')}`);
  let stopping: Promise<void> | undefined;
  return {
    controllers: names,
    stop() {
      stopping ??= (async () => {
        for (const { reconciler } of reconcilers) {
          reconciler.stop?.();
          reconciler.queue.shutDown();
        }
        await Promise.all(running);
        await caService?.service.close();
        await stopInformers();
      })();
      return stopping;
    },
  };
}
