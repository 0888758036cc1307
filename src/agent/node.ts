/**
 * The agent's Node object, kept as kubelet keeps its own
 * (pkg/kubelet/kubelet_node_status.go): registered on start with the
 * node's InternalIP and Hostname addresses, the Ready condition and, with
 * the vxlan backend, the MAC of its VXLAN device in the
 * `strata.dev/vxlan-mac` annotation (Flannel publishes its VTEP MAC the
 * same way, in `flannel.alpha.coreos.com/backend-data`); then the Ready
 * condition's heartbeat every nodeStatusUpdateFrequency.
 */
import { arch, release } from 'node:os';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import { type ApiClient, isAlreadyExists, isNotFound } from '../client/index.js';
import { strataVersion } from '../version.js';
import { timestamp } from '../api/time.js';
import type { AgentSettings } from './options.js';

export const nodeResource = resourceForKind('v1', 'Node') as ResourceType;
export const vxlanMacAnnotation = 'strata.dev/vxlan-mac';

const goArch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };

/** The Ready condition at `now`, True since `since`. */
export function readyCondition(now: string, since: string): Record<string, unknown> {
  return {
    type: 'Ready',
    status: 'True',
    lastHeartbeatTime: now,
    lastTransitionTime: since,
    reason: 'KubeletReady',
    message: 'strata agent is posting ready status',
  };
}

/** The Node's conditions with `condition` in place of the one of its type, as kubelet merges them. */
function withCondition(
  node: KubeObject,
  condition: Record<string, unknown>,
): Record<string, unknown>[] {
  const current = node.status?.conditions;
  const others = Array.isArray(current)
    ? (current as Record<string, unknown>[]).filter((c) => c.type !== condition.type)
    : [];
  return [...others, condition];
}

/** The status the agent registers its Node with. */
export function compileNodeStatus(
  settings: Pick<AgentSettings, 'nodeName' | 'nodeIpText'>,
  now: string,
  readySince: string,
): Record<string, unknown> {
  return {
    addresses: [
      { type: 'InternalIP', address: settings.nodeIpText },
      { type: 'Hostname', address: settings.nodeName },
    ],
    conditions: [readyCondition(now, readySince)],
    nodeInfo: {
      kubeletVersion: `strata-${strataVersion}`,
      kubeProxyVersion: '',
      operatingSystem: 'linux',
      architecture: goArch[arch()] ?? arch(),
      kernelVersion: release(),
      containerRuntimeVersion: `strata://${strataVersion}`,
      osImage: '',
      machineID: '',
      systemUUID: '',
      bootID: '',
    },
  };
}

/** Labels and annotations the agent owns; `null` removes an annotation (JSON merge patch). */
export function compileNodeMetadata(
  settings: Pick<AgentSettings, 'nodeName'>,
  vxlanMac: string | undefined,
): { labels: Record<string, string>; annotations: Record<string, string | null> } {
  return {
    labels: {
      'kubernetes.io/hostname': settings.nodeName,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': goArch[arch()] ?? arch(),
    },
    annotations: { [vxlanMacAnnotation]: vxlanMac ?? null },
  };
}

/** When the Ready condition of an existing Node turned True, if it is True. */
function readySinceOf(node: KubeObject): string | undefined {
  const conditions = node.status?.conditions;
  if (!Array.isArray(conditions)) return undefined;
  const ready = (conditions as Record<string, unknown>[]).find((c) => c.type === 'Ready');
  return ready?.status === 'True' && typeof ready.lastTransitionTime === 'string'
    ? ready.lastTransitionTime
    : undefined;
}

export class NodeRegistration {
  #readySince = timestamp();
  #timer: NodeJS.Timeout | undefined;
  #vxlanMac: string | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly settings: AgentSettings,
  ) {}

  /** Creates the Node, or brings an existing one up to date; idempotent. */
  async register(vxlanMac: string | undefined): Promise<void> {
    const { nodeName } = this.settings;
    this.#vxlanMac = vxlanMac;
    const metadata = compileNodeMetadata(this.settings, vxlanMac);
    const now = timestamp();
    try {
      const annotations: Record<string, string> = {};
      for (const [key, value] of Object.entries(metadata.annotations)) {
        if (value !== null) annotations[key] = value;
      }
      await this.client.create({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: nodeName, labels: metadata.labels, annotations },
        spec: {},
        status: compileNodeStatus(this.settings, now, this.#readySince),
      });
      return;
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
    }
    const existing = await this.client.patch(nodeResource, nodeName, { metadata });
    this.#readySince = readySinceOf(existing) ?? now;
    const status = compileNodeStatus(this.settings, now, this.#readySince);
    status.conditions = withCondition(existing, readyCondition(now, this.#readySince));
    await this.client.patch(nodeResource, nodeName, { status }, { subresource: 'status' });
  }

  /** Refreshes the Ready condition's heartbeat every heartbeatIntervalMs. */
  startHeartbeat(): void {
    this.#timer = setInterval(() => {
      void this.#beat();
    }, this.settings.heartbeatIntervalMs);
  }

  async #beat(): Promise<void> {
    try {
      // A merge patch replaces a list whole: send every condition, others' (the
      // controller's NetworkUnavailable) untouched, with the version they were read at.
      const node = await this.client.get(nodeResource, this.settings.nodeName);
      await this.client.patch(
        nodeResource,
        this.settings.nodeName,
        {
          metadata: { resourceVersion: node.metadata.resourceVersion },
          status: {
            conditions: withCondition(node, readyCondition(timestamp(), this.#readySince)),
          },
        },
        { subresource: 'status' },
      );
    } catch (error) {
      if (isNotFound(error)) {
        // Deleted from the API while the agent runs: register again, as kubelet does.
        await this.register(this.#vxlanMac).catch((again: unknown) => {
          this.settings.log(`cannot register the node again: ${messageChain(again)}`);
        });
        return;
      }
      this.settings.log(`node heartbeat failed: ${messageChain(error)}`);
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
