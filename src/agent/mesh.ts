/**
 * The agent's mesh part (docs/mesh.md, "Next: the node proxy"): the
 * ambient L4 mesh of this node, on only when the agent is given the CA
 * service (`--ca-socket`, `--ca-token-file`).
 *
 * - Informers for Pods, Namespaces, PeerAuthentications and
 *   AuthorizationPolicies of the whole cluster feed a WorkloadIndex
 *   (src/mesh/proxy/workloads.ts).
 * - A CertificateManager obtains the certificates of the identities this
 *   node's enrolled pods run as from the controller's CA service, asking for
 *   `workloadCertTtlSeconds` (`--workload-cert-ttl`) and rotating them at half
 *   life; an identity no local enrolled pod uses any more is released.
 * - A NodeProxy listens in the node's namespace (15001, 15006, 15008, metrics
 *   on 15020, readiness on 15021) and appends its access log to
 *   `<state>/nodes/<node>/mesh-access.log`.
 * - The capture table `inet strata_mesh` holds the addresses of this node's
 *   enrolled pods (IPv4 only: the proxy listens on IPv4). It is made whole
 *   once every informer has listed, then changed incrementally (a set element
 *   per pod enrolled or un-enrolled), as the Service proxy applies its table:
 *   enrolling or un-enrolling a running pod, by a pod or namespace label,
 *   takes effect without restarting it. The policy routing (fwmark 0x111 →
 *   table 133) is set up once at start.
 *
 * Unlike the agent's other tables, the capture does not outlive the agent:
 * with no proxy listening, `tproxy` would hand enrolled pods' connections to
 * nothing and reset them. stop() removes the table and the policy routing, so
 * pods fall back to plain traffic (NetworkPolicy and Services still apply)
 * while no agent runs; the next agent captures them again.
 */
import { join } from 'node:path';
import { isIPv4 } from 'node:net';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import { type ApiClient, type Informer, type SharedInformers } from '../client/index.js';
import { NftRunner } from '../kernel/libnftables.js';
import { CertificateManager } from '../mesh/certificates/manager.js';
import { formatSpiffeId } from '../mesh/identity/spiffe.js';
import {
  applyPolicyRouting,
  compileCapture,
  removePolicyRouting,
  renderCapture,
  renderCaptureChange,
  renderCaptureRemoval,
} from '../mesh/proxy/capture.js';
import { NodeProxy } from '../mesh/proxy/proxy.js';
import { WorkloadIndex } from '../mesh/proxy/workloads.js';
import type { NftTableState } from '../services/nft-state.js';
import { SerialRuns } from './serial-runs.js';

function resource(apiVersion: string, kind: string): ResourceType {
  const found = resourceForKind(apiVersion, kind);
  if (!found) throw new Error(`the registry has no ${apiVersion} ${kind}`);
  return found;
}

export interface MeshAgentOptions {
  client: ApiClient;
  /** The agent's informers, shared with its other parts; their owner stops them. */
  informers: SharedInformers;
  nodeName: string;
  /** `<state>/nodes/<node>`: the access log goes here. */
  nodeDir: string;
  caSocket: string;
  tokenFile: string;
  trustDomain: string;
  /** The lifetime asked of the CA for each workload certificate; the CA's default (24 h) when unset. */
  workloadCertTtlSeconds?: number;
  log: (line: string) => void;
}

/** The access log's file name under the node's directory. */
export const meshAccessLogFile = 'mesh-access.log';

export class MeshAgent {
  readonly index: WorkloadIndex;
  readonly #options: MeshAgentOptions;
  readonly #informers: Informer[] = [];
  readonly #certificates: CertificateManager;
  readonly #proxy: NodeProxy;
  readonly #nft: NftRunner;
  readonly #runs = new SerialRuns(() => this.#sync());
  #applied: NftTableState | undefined;
  #started = false;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(options: MeshAgentOptions) {
    this.#options = options;
    const log = (line: string) => {
      options.log(`mesh: ${line}`);
    };
    this.index = new WorkloadIndex({ trustDomain: options.trustDomain });
    this.#nft = new NftRunner(log);
    this.#certificates = new CertificateManager({
      caSocket: options.caSocket,
      tokenFile: options.tokenFile,
      trustDomain: options.trustDomain,
      ...(options.workloadCertTtlSeconds === undefined
        ? {}
        : { ttlSeconds: options.workloadCertTtlSeconds }),
      log,
    });
    this.#certificates.on('refused', (identity, error) => {
      log(`the CA refused ${formatSpiffeId(identity)}: ${error.message}`);
    });
    this.#proxy = new NodeProxy({
      nodeName: options.nodeName,
      workloads: this.index,
      certificates: this.#certificates,
      accessLogPath: join(options.nodeDir, meshAccessLogFile),
      log,
    });
    const watch = (
      apiVersion: string,
      kind: string,
      upsert: (object: KubeObject) => void,
      remove: (object: KubeObject) => void,
    ) => {
      const informer = options.informers.informer(resource(apiVersion, kind));
      informer.on({
        added: (object) => {
          upsert(object);
          this.schedule();
        },
        updated: (_old, object) => {
          upsert(object);
          this.schedule();
        },
        deleted: (object) => {
          remove(object);
          this.schedule();
        },
      });
      this.#informers.push(informer);
    };
    const index = this.index;
    watch(
      'v1',
      'Namespace',
      (o) => {
        index.upsertNamespace(o);
      },
      (o) => {
        index.deleteNamespace(o);
      },
    );
    watch(
      'security.istio.io/v1',
      'PeerAuthentication',
      (o) => {
        index.upsertPeerAuthentication(o);
      },
      (o) => {
        index.deletePeerAuthentication(o);
      },
    );
    watch(
      'security.istio.io/v1',
      'AuthorizationPolicy',
      (o) => {
        index.upsertAuthorizationPolicy(o);
      },
      (o) => {
        index.deleteAuthorizationPolicy(o);
      },
    );
    watch(
      'v1',
      'Pod',
      (o) => {
        index.upsertPod(o);
      },
      (o) => {
        index.deletePod(o);
      },
    );
  }

  /** Lists everything, starts the proxy, sets up policy routing and makes the capture whole. */
  async start(): Promise<void> {
    // Namespaces and policies before pods, so the first capture knows every enrollment.
    for (const informer of this.#informers) await this.#options.informers.start(informer);
    await applyPolicyRouting([4]);
    await this.#proxy.start();
    this.#started = true;
    await this.#runs.request();
    this.#options.log(`mesh: node proxy running, ${this.#enrolled().length} enrolled pod(s)`);
  }

  /** Brings the capture and the certificates in step with the index. */
  schedule(): void {
    if (!this.#started || this.#stopped) return;
    this.#runs.request().catch((error: unknown) => {
      this.#options.log(`mesh: applying the capture failed: ${messageChain(error)}`);
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => {
        this.schedule();
      }, 2000);
      this.#retry.unref();
    });
  }

  status(): ReturnType<NodeProxy['status']> {
    return this.#proxy.status();
  }

  #enrolled(): string[] {
    return this.index
      .enrolledOn(this.#options.nodeName)
      .map((w) => w.ip)
      .filter((ip) => isIPv4(ip))
      .sort();
  }

  async #sync(): Promise<void> {
    const next = compileCapture({ enrolled: this.#enrolled() });
    let whole = this.#applied === undefined;
    if (this.#applied) {
      const change = renderCaptureChange(this.#applied, next);
      if (change !== '') {
        try {
          await this.#nft.apply(change);
        } catch (error) {
          this.#options.log(
            `mesh: an incremental capture change failed, replacing the table: ${messageChain(error)}`,
          );
          whole = true;
        }
      }
    }
    if (whole) await this.#nft.apply(renderCapture(next));
    this.#applied = next;
    this.#releaseUnused();
  }

  /** Releases the certificates of identities no enrolled pod of this node runs as. */
  #releaseUnused(): void {
    const used = new Set(
      this.index.enrolledOn(this.#options.nodeName).map((w) => formatSpiffeId(w.identity)),
    );
    for (const identity of this.#certificates.identities()) {
      if (!used.has(formatSpiffeId(identity))) this.#certificates.release(identity);
    }
  }

  /** Stops the proxy and removes the capture and its policy routing (the agent stops the watches). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#runs.stop();
    if (this.#started) {
      await this.#nft.apply(renderCaptureRemoval()).catch((error: unknown) => {
        this.#options.log(`mesh: removing the capture failed: ${messageChain(error)}`);
      });
      await removePolicyRouting([4]);
    }
    await this.#proxy.stop();
    this.#certificates.close();
    await this.#nft.close();
  }
}
