/**
 * A node namespace with pods wired in routed pod mode by hand (docs/mesh.md):
 * bridge `cni0` with the gateway address, each pod's host veth an isolated
 * bridge port, proxy ARP with pvlan on the bridge, br_netfilter off, so pods on
 * the bridge reach each other through the node's IP layer. For the capture and
 * node proxy tests, which need this topology without a whole cluster.
 */
import { type Lab, sh } from './netns.js';

export interface RoutedPods<K extends string> {
  node: string;
  /** The pods' namespaces by key. */
  pods: Record<K, string>;
}

/** Makes the node and one pod per entry of `ips` (key → address in `subnet`, a /24 whose .1 is the gateway). */
export function routedLab<K extends string>(
  lab: Lab,
  prefix: string,
  subnet: string,
  ips: Record<K, string>,
): RoutedPods<K> {
  const node = lab.netns(`${prefix}n`);
  const gateway = subnet.replace(/\.0\/24$/, '.1');
  sh('ip', ['-n', node, 'link', 'add', 'cni0', 'type', 'bridge']);
  sh('ip', ['-n', node, 'addr', 'add', `${gateway}/24`, 'dev', 'cni0']);
  sh('ip', ['-n', node, 'link', 'set', 'cni0', 'up']);
  const pods = {} as Record<K, string>;
  for (const [key, ip] of Object.entries(ips) as [K, string][]) {
    const pod = lab.netns(`${prefix}${key}`);
    pods[key] = pod;
    const host = `veth${key}`;
    sh('ip', [
      '-n',
      node,
      'link',
      'add',
      host,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      pod,
    ]);
    sh('ip', ['-n', node, 'link', 'set', host, 'master', 'cni0', 'up']);
    sh('ip', ['-n', node, 'link', 'set', 'dev', host, 'type', 'bridge_slave', 'isolated', 'on']);
    sh('ip', ['-n', pod, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', pod, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', pod, 'route', 'add', 'default', 'via', gateway]);
  }
  sh('ip', [
    'netns',
    'exec',
    node,
    'sysctl',
    '-qw',
    'net.ipv4.ip_forward=1',
    'net.ipv4.conf.cni0.proxy_arp=1',
    'net.ipv4.conf.cni0.proxy_arp_pvlan=1',
    'net.bridge.bridge-nf-call-iptables=0',
  ]);
  return { node, pods };
}
