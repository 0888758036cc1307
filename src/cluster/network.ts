/**
 * The cluster's networks, made with iproute2 (docs/cluster.md, Networks):
 * the underlay namespace with its bridge, and per node a namespace whose
 * eth0 is a veth on that bridge, with the node's IP, lo up and IPv4
 * forwarding on. Nothing here touches the host's root namespace: every
 * link is created inside a cluster namespace and dies with it.
 */
import { readdirSync } from 'node:fs';
import { run } from '../kernel/command.js';
import type { ClusterPlan, NodePlan } from './config.js';

const netnsDir = '/var/run/netns';

/** The named network namespaces on this machine (`ip netns list`). */
export function listNamespaces(): string[] {
  try {
    return readdirSync(netnsDir);
  } catch {
    return [];
  }
}

export function namespaceExists(netns: string): boolean {
  return listNamespaces().includes(netns);
}

function ip(args: readonly string[]): void {
  run('ip', args);
}

function addNamespace(netns: string): void {
  ip(['netns', 'add', netns]);
  ip(['-n', netns, 'link', 'set', 'lo', 'up']);
}

/** The underlay: its namespace, and the bridge in it, up. */
export function createUnderlay(plan: ClusterPlan): void {
  const { netns, bridge } = plan.underlay;
  addNamespace(netns);
  ip(['-n', netns, 'link', 'add', bridge, 'type', 'bridge']);
  ip(['-n', netns, 'link', 'set', bridge, 'up']);
}

/**
 * One node's namespace: eth0 (a veth whose other end, named after the node,
 * is on the underlay bridge) with the node's IP, lo up, ip_forward on.
 */
export function createNode(plan: ClusterPlan, node: NodePlan): void {
  const underlay = plan.underlay.netns;
  const prefixLength = plan.underlayCidr.split('/')[1] ?? '24';
  addNamespace(node.netns);
  // Created in the underlay namespace, the peer moved straight into the node's.
  ip([
    '-n',
    underlay,
    'link',
    'add',
    node.name,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    node.netns,
  ]);
  ip(['-n', underlay, 'link', 'set', node.name, 'master', plan.underlay.bridge, 'up']);
  ip(['-n', node.netns, 'addr', 'add', `${node.ip}/${prefixLength}`, 'dev', 'eth0']);
  ip(['-n', node.netns, 'link', 'set', 'eth0', 'up']);
  // /proc/sys/net answers for the namespace of the process that opens it.
  run('ip', ['netns', 'exec', node.netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
}

/** Deletes a named namespace; its links, routes and nftables tables go with it. */
export function deleteNamespace(netns: string): void {
  run('ip', ['netns', 'del', netns]);
}
