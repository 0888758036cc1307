/**
 * `strata explain FROM TO:PORT[/PROTOCOL] [-n NS] [-o json]`: whether FROM may
 * open a connection to TO, and why, layer by layer. The answer is decide()'s
 * (src/policy/decide.ts), over the model the nftables compiler reads too.
 *
 * FROM and TO are `POD` (in -n's namespace, else `default`), `NAMESPACE/POD`
 * or an IP address; an IPv6 address with a port is written `[ADDRESS]:PORT`.
 * TO needs a port, since rules allow ports; the protocol defaults to TCP.
 *
 * Exit codes follow `kubectl auth can-i`: 0 allowed, 1 denied. A command
 * line that is wrong is 2, as for every command, and any other failure 3, so
 * that a script can tell "denied" from "could not tell".
 */
import { parseArgs } from 'node:util';
import type { KubeObject } from '../api/types.js';
import { familyOf, formatIp, parseIp } from '../netaddr/ip.js';
import { type MeshDecision, type MeshEndpoint, decideMesh } from '../mesh/decide.js';
import { hbonePort } from '../mesh/hbone/settings.js';
import type { AuthorizationDecision, EffectiveMtls } from '../mesh/policy/index.js';
import {
  type Decision,
  type Endpoint,
  type SideDecision,
  decide,
  withLayer,
} from '../policy/decide.js';
import { policyInputFromObjects } from '../policy/input.js';
import { type PolicyModel, type RuleRef, buildPolicyModel } from '../policy/model.js';
import type { Protocol } from '../policy/types.js';
import {
  CommandError,
  UsageError,
  namespaceOption,
  parseCommandLine,
  resolveKind,
  targetOptions,
} from './args.js';
import { connect } from './connect.js';
import type { Io } from './io.js';

export const explainExitCodes = { allowed: 0, denied: 1, usage: 2, failure: 3 } as const;

/** The connection asked about. */
export interface ExplainQuery {
  from: Endpoint;
  to: Endpoint;
  protocol: Protocol;
  port: number;
}

const protocols: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const example = 'for example "strata explain x/client y/server:80"';

/** `HOST` and what follows its `:`, if anything; HOST is `[IPv6]`, a bare address or a pod. */
function splitHost(role: string, text: string): { host: string; service: string | undefined } {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    const rest = close < 0 ? '' : text.slice(close + 1);
    if (close < 0 || parseIp(text.slice(1, close)) === undefined || /^[^:]/.test(rest)) {
      throw new UsageError(
        `strata explain: ${role} ${JSON.stringify(text)}: expected [ADDRESS]:PORT`,
      );
    }
    return { host: text.slice(1, close), service: rest === '' ? undefined : rest.slice(1) };
  }
  if (parseIp(text) !== undefined) return { host: text, service: undefined };
  // Pod names and namespaces have no colons: the first one starts the port.
  const colon = text.indexOf(':');
  if (colon < 0) return { host: text, service: undefined };
  const host = text.slice(0, colon);
  const service = text.slice(colon + 1);
  if (service.includes(':')) {
    throw new UsageError(
      `strata explain: ${role} ${JSON.stringify(text)}: an IPv6 address with a port is written [ADDRESS]:PORT`,
    );
  }
  return { host, service };
}

/** A pod (`namespace/name`) or an address, in canonical form. */
function endpointOf(role: string, host: string, namespace: string): Endpoint {
  const address = parseIp(host);
  if (address) return { ip: formatIp(address) };
  const parts = host.split('/');
  if (parts.length === 1 && host !== '') return { pod: `${namespace}/${host}` };
  if (parts.length === 2 && parts.every((p) => p !== '')) return { pod: host };
  throw new UsageError(
    `strata explain: ${role} ${JSON.stringify(host)}: expected POD, NAMESPACE/POD or an IP address`,
  );
}

/** `PORT[/PROTOCOL]`: 1-65535, TCP, UDP or SCTP in any case, TCP when absent. */
function serviceOf(to: string, service: string): { port: number; protocol: Protocol } {
  const slash = service.indexOf('/');
  const portText = slash < 0 ? service : service.slice(0, slash);
  const protocolText = slash < 0 ? 'TCP' : service.slice(slash + 1).toUpperCase();
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new UsageError(
      `strata explain: TO ${JSON.stringify(to)}: the port must be 1-65535: got ${JSON.stringify(portText)}`,
    );
  }
  const protocol = protocols.find((p) => p === protocolText);
  if (!protocol) {
    throw new UsageError(
      `strata explain: TO ${JSON.stringify(to)}: the protocol must be TCP, UDP or SCTP: got ${JSON.stringify(service.slice(slash + 1))}`,
    );
  }
  return { port, protocol };
}

/** FROM and TO:PORT[/PROTOCOL] as typed; bare pod names are in `namespace`. */
export function parseExplainQuery(positionals: readonly string[], namespace: string): ExplainQuery {
  const [fromText, toText, ...extra] = positionals;
  if (fromText === undefined || toText === undefined || extra.length > 0) {
    throw new UsageError(`strata explain: expected FROM and TO:PORT[/PROTOCOL], ${example}`);
  }
  const source = splitHost('FROM', fromText);
  if (source.service !== undefined) {
    // NetworkPolicy never looks at the source port.
    throw new UsageError(
      `strata explain: FROM ${JSON.stringify(fromText)}: FROM takes no port, only TO does`,
    );
  }
  const destination = splitHost('TO', toText);
  if (destination.service === undefined) {
    const hint = familyOf(destination.host) === 6 ? ` ([${destination.host}]:PORT for IPv6)` : '';
    throw new UsageError(
      `strata explain: TO ${JSON.stringify(toText)} needs a port${hint}: the answer depends on it, ${example}`,
    );
  }
  return {
    from: endpointOf('FROM', source.host, namespace),
    to: endpointOf('TO', destination.host, namespace),
    ...serviceOf(toText, destination.service),
  };
}

/** One end of the connection, as the report shows it. */
export interface ExplainedEndpoint {
  /** As decide() was given it. */
  endpoint: Endpoint;
  /** `namespace/pod`, or the address. */
  name: string;
  /** The pod it is or whose address it is (`namespace/name`). */
  pod?: string;
  /** The node its pod runs on, or whose address it is. */
  node?: string;
  addresses: string[];
  /** Why NetworkPolicy cannot place it, when it cannot. */
  problem?: string;
}

export interface Explanation {
  from: ExplainedEndpoint;
  to: ExplainedEndpoint;
  protocol: Protocol;
  port: number;
  decision: Decision;
}

/** The lists the model is built from, as the API serves them. */
export interface ClusterObjects {
  policies: readonly KubeObject[];
  pods: readonly KubeObject[];
  namespaces: readonly KubeObject[];
  nodes: readonly KubeObject[];
  /** security.istio.io PeerAuthentications and AuthorizationPolicies, for the mesh layer. */
  peerAuthentications?: readonly KubeObject[];
  authorizationPolicies?: readonly KubeObject[];
}

/** Why a pod that exists is not in the model (policyPod leaves it out). */
function absentPodProblem(key: string, pod: KubeObject): string {
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') {
    return `${key} has finished (phase ${phase}): NetworkPolicy no longer applies to it`;
  }
  return `${key} is not scheduled to a node yet, so it has no pod IP`;
}

function explainEndpoint(
  model: PolicyModel,
  pods: readonly KubeObject[],
  endpoint: Endpoint,
): ExplainedEndpoint {
  if ('pod' in endpoint) {
    const key = endpoint.pod;
    const known = model.pods.get(key);
    if (known) {
      const { ips, node } = known.pod;
      return {
        endpoint,
        name: key,
        pod: key,
        node,
        addresses: [...ips],
        ...(ips.length === 0 ? { problem: `${key} has no pod IP yet` } : {}),
      };
    }
    const slash = key.indexOf('/');
    const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
    const object = pods.find(
      (p) => (p.metadata.namespace ?? 'default') === namespace && p.metadata.name === name,
    );
    if (!object)
      throw new CommandError(`pod ${key} not found (no pod "${name}" in namespace "${namespace}")`);
    return { endpoint, name: key, pod: key, addresses: [], problem: absentPodProblem(key, object) };
  }
  const address = endpoint.ip;
  const pod = [...model.pods.values()].find((p) => p.pod.ips.some((ip) => sameIp(ip, address)));
  if (pod)
    return { endpoint, name: address, pod: pod.key, node: pod.pod.node, addresses: [address] };
  const node = [...model.nodes.values()].find((n) => n.ips.some((ip) => sameIp(ip, address)));
  return { endpoint, name: address, ...(node ? { node: node.name } : {}), addresses: [address] };
}

function sameIp(text: string, canonical: string): boolean {
  const parsed = parseIp(text);
  return parsed !== undefined && formatIp(parsed) === canonical;
}

/** Decides the query over these objects, and says who the endpoints are. */
export function explainConnection(objects: ClusterObjects, query: ExplainQuery): Explanation {
  const model = buildPolicyModel(policyInputFromObjects(objects));
  const from = explainEndpoint(model, objects.pods, query.from);
  const to = explainEndpoint(model, objects.pods, query.to);
  let decision = decide(model, query.from, query.to, query.protocol, query.port);
  const sourceAddress = from.addresses[0];
  const destinationAddress = to.addresses[0];
  if (sourceAddress !== undefined && destinationAddress !== undefined) {
    const mesh = decideMesh(
      {
        pods: objects.pods,
        namespaces: objects.namespaces,
        peerAuthentications: objects.peerAuthentications ?? [],
        authorizationPolicies: objects.authorizationPolicies ?? [],
      },
      {
        ...(from.pod ? { sourcePod: from.pod } : {}),
        sourceAddress,
        ...(to.pod ? { destinationPod: to.pod } : {}),
        destinationAddress,
        protocol: query.protocol,
        port: query.port,
      },
    );
    // Between two pods in the mesh the connection rides a tunnel from the source
    // pod to the destination pod's 15008, which NetworkPolicy judges too.
    if (mesh.reason === 'authorization' && mesh.transport === 'hbone') {
      const tunnel = decide(model, query.from, query.to, 'TCP', hbonePort);
      decision = withLayer(decision, {
        layer: 'networkpolicy',
        verdict: tunnel.verdict,
        egress: tunnel.egress,
        ingress: tunnel.ingress,
        tunnelPort: hbonePort,
      });
    }
    // The mesh has a say only when one of the ends is in it.
    if (mesh.source.identity !== undefined || mesh.destination.identity !== undefined) {
      decision = withLayer(decision, mesh);
    }
  }
  return { from, to, protocol: query.protocol, port: query.port, decision };
}

/* The report */

/** `x/a (10.244.1.5, node n1)`, `10.244.2.7 (pod y/b, node n2)`, `172.31.0.11 (node n1)`. */
function endpointLabel(e: ExplainedEndpoint): string {
  const details =
    'pod' in e.endpoint
      ? [...(e.addresses.length > 0 ? e.addresses : ['no pod IP'])]
      : e.pod !== undefined
        ? [`pod ${e.pod}`]
        : [];
  if (e.node !== undefined) details.push(`node ${e.node}`);
  return details.length === 0 ? e.name : `${e.name} (${details.join(', ')})`;
}

function ruleText(direction: 'ingress' | 'egress', ref: RuleRef): string {
  return `${ref.policy} ${direction}[${ref.rule}]`;
}

/** Why decide() could not place an endpoint: its problem, else no address family in common. */
function unknownEndpointText(e: Explanation): string {
  const problem = e.from.problem ?? e.to.problem;
  if (problem !== undefined) return problem;
  const families = (x: ExplainedEndpoint): string =>
    [...new Set(x.addresses.map((a) => `IPv${String(familyOf(a))}`))].join(', ');
  return `${e.from.name} (${families(e.from)}) and ${e.to.name} (${families(e.to)}) have no address family in common`;
}

/** One direction of the NetworkPolicy layer, for the pod at that end. */
function sideText(
  e: Explanation,
  direction: 'ingress' | 'egress',
  side: SideDecision,
  port = e.port,
): string {
  const [self, peer] = direction === 'egress' ? [e.from, e.to] : [e.to, e.from];
  const pod = self.pod ?? self.name;
  const policyType = direction === 'egress' ? 'Egress' : 'Ingress';
  switch (side.reason) {
    case 'rules':
      return `allowed by ${side.by.map((ref) => ruleText(direction, ref)).join(', ')}`;
    case 'not-isolated':
      return `allowed — ${pod} is not isolated for ${direction} (no policy selects it with ${policyType})`;
    case 'not-a-pod': {
      const whose = self.node === undefined ? '' : ` (it is node ${self.node}'s)`;
      return `allowed — ${self.name} is not a pod's address${whose}: NetworkPolicy restricts only pods`;
    }
    case 'self':
      return 'allowed — a pod can always reach itself';
    case 'node':
      return `allowed — ${peer.name} is an address of ${pod}'s node ${self.node ?? ''}: traffic between a pod and its node is always allowed`;
    case 'no-rule-allows': {
      const toOrFrom = direction === 'egress' ? 'to' : 'from';
      const protocol = port === e.port ? e.protocol : 'TCP';
      return `denied — ${pod} is isolated for ${direction} by ${side.isolatedBy.join(', ')}; no rule allows ${protocol}/${port} ${toOrFrom} ${peer.name}`;
    }
    case 'unknown-endpoint':
      return `denied — ${unknownEndpointText(e)}`;
  }
}

/** Lines `label value`, the values aligned. */
function aligned(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `  ${label.padEnd(width)} ${value}`);
}

function meshEndpointText(end: MeshEndpoint): string {
  if (end.enrollment === undefined) return 'not a pod: outside the mesh';
  if (!end.enrollment.enrolled) return `outside the mesh — ${end.enrollment.reason}`;
  return `${end.identity ?? ''} — ${end.enrollment.reason}`;
}

function mtlsText(mtls: EffectiveMtls): string {
  const source =
    mtls.source === 'default'
      ? 'no PeerAuthentication applies: the default'
      : `PeerAuthentication ${mtls.source.namespace}/${mtls.source.name}, ${mtls.source.level} level${mtls.source.port === undefined ? '' : `, port ${mtls.source.port}`}`;
  const plaintext = mtls.acceptsPlaintext ? 'plaintext accepted' : 'plaintext refused';
  return `${mtls.mode} (${source}; ${plaintext})`;
}

function authorizationText(a: AuthorizationDecision): string {
  switch (a.reason) {
    case 'no-allow-policy':
      return 'allowed — no ALLOW or DENY AuthorizationPolicy matches it';
    case 'allow-rule':
      return `allowed by AuthorizationPolicy ${a.decidedBy.namespace}/${a.decidedBy.name} rules[${a.decidedBy.ruleIndex}]`;
    case 'deny-rule':
      return `denied by AuthorizationPolicy ${a.decidedBy.namespace}/${a.decidedBy.name} rules[${a.decidedBy.ruleIndex}] (DENY)`;
    case 'no-allow-rule-matched':
      return `denied — ALLOW policies apply (${a.allowPolicies.map((p) => `${p.namespace}/${p.name}`).join(', ')}) and none of their rules matches`;
    case 'custom-unsupported':
      return `denied — ${a.unsupported}`;
  }
}

/** The mesh layer's lines. */
function meshSection(e: Explanation, layer: MeshDecision): string[] {
  const rows: [string, string][] = [
    [`${e.from.name}:`, meshEndpointText(layer.source)],
    [`${e.to.name}:`, meshEndpointText(layer.destination)],
  ];
  const warnings: string[] = [];
  switch (layer.reason) {
    case 'not-tcp':
      rows.push(['verdict:', `allowed — the mesh carries TCP only; ${e.protocol} passes it by`]);
      break;
    case 'destination-outside-mesh':
      rows.push([
        'verdict:',
        `allowed — ${e.to.name} is outside the mesh, so no proxy enforces policy for it`,
      ]);
      break;
    case 'plaintext-refused':
      rows.push([`mTLS at port ${e.port}:`, mtlsText(layer.mtls)]);
      rows.push([
        'verdict:',
        `denied — ${e.from.name} is outside the mesh and would arrive in plaintext, which STRICT refuses`,
      ]);
      warnings.push(...layer.mtls.warnings);
      break;
    case 'authorization':
      rows.push([
        'transport:',
        layer.transport === 'hbone'
          ? 'HBONE: HTTP/2 CONNECT over mutual TLS between the node proxies (port 15008)'
          : 'plaintext into the destination node proxy',
      ]);
      rows.push([`mTLS at port ${e.port}:`, mtlsText(layer.mtls)]);
      rows.push(['authorization:', authorizationText(layer.authorization)]);
      for (const audit of layer.authorization.audited) {
        rows.push([
          'audited by:',
          `AuthorizationPolicy ${audit.namespace}/${audit.name} rules[${audit.ruleIndex}]`,
        ]);
      }
      warnings.push(...layer.mtls.warnings, ...layer.authorization.warnings);
      break;
  }
  return [
    'Mesh (ambient, L4 node proxies):',
    ...aligned(rows),
    ...warnings.map((w) => `  warning: ${w}`),
  ];
}

/** The section for one layer of the decision. */
function layerSection(e: Explanation, layer: Decision['layers'][number]): string[] {
  // Each layer has its section; the compiler asks for one per layer (this switch
  // must return for every layer).
  switch (layer.layer) {
    case 'mesh':
      return meshSection(e, layer);
    case 'networkpolicy': {
      const port = layer.tunnelPort ?? e.port;
      const lines = [
        layer.tunnelPort === undefined
          ? 'NetworkPolicy (kernel, nftables):'
          : `NetworkPolicy on the mesh tunnel (kernel, nftables; TCP/${port} pod to pod):`,
        ...aligned([
          [`egress  from ${e.from.name}:`, sideText(e, 'egress', layer.egress, port)],
          [`ingress to ${e.to.name}:`, sideText(e, 'ingress', layer.ingress, port)],
        ]),
      ];
      if (layer.tunnelPort !== undefined && layer.verdict === 'deny') {
        lines.push(
          `  hint: in ambient mode the mesh carries the connection over TCP/${port}; allow that port beside ${e.protocol}/${e.port} in the policies that isolate these pods, as Istio asks`,
        );
      }
      return lines;
    }
  }
}

/** The human report: the connection and the overall verdict, then one section per layer. */
export function explainText(e: Explanation): string {
  const verdict = e.decision.verdict === 'allow' ? 'ALLOWED' : 'DENIED';
  const lines = [
    `${endpointLabel(e.from)} -> ${endpointLabel(e.to)} ${e.protocol}/${e.port}: ${verdict}`,
  ];
  for (const layer of e.decision.layers) lines.push('', ...layerSection(e, layer));
  return lines.map((line) => `${line}\n`).join('');
}

/** `-o json`: the endpoints as resolved, the query, and decide()'s Decision as it is. */
export function explainJson(e: Explanation): string {
  return `${JSON.stringify(e, null, 4)}\n`;
}

function outputOf(text: string | undefined): 'json' | undefined {
  if (text === undefined || text === 'json') return text;
  throw new UsageError(
    `strata explain: unable to match a printer suitable for the output format ${JSON.stringify(text)}, allowed formats are: json`,
  );
}

export async function explainCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('explain', () =>
    parseArgs({
      args: [...argv],
      options: { ...targetOptions, ...namespaceOption, output: { type: 'string', short: 'o' } },
      allowPositionals: true,
      strict: true,
    }),
  );
  const output = outputOf(values.output);
  const query = parseExplainQuery(positionals, values.namespace ?? 'default');
  const { client } = connect(values);
  let explanation: Explanation;
  try {
    // Every namespace: peers may select pods anywhere, and an address may be any pod's.
    const items = async (kind: string): Promise<KubeObject[]> =>
      (await client.list(resolveKind(kind))).items;
    const [policies, pods, namespaces, nodes, peerAuthentications, authorizationPolicies] =
      await Promise.all([
        items('networkpolicies'),
        items('pods'),
        items('namespaces'),
        items('nodes'),
        items('peerauthentications'),
        items('authorizationpolicies'),
      ]);
    explanation = explainConnection(
      { policies, pods, namespaces, nodes, peerAuthentications, authorizationPolicies },
      query,
    );
  } finally {
    client.close();
  }
  io.out.write(output === 'json' ? explainJson(explanation) : explainText(explanation));
  return explanation.decision.verdict === 'allow'
    ? explainExitCodes.allowed
    : explainExitCodes.denied;
}
