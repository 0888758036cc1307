/**
 * The vxlan backend's device, as Flannel's vxlan backend makes it
 * (pkg/backend/vxlan): `vxlan0`, VNI 1, UDP port 8472 (the Linux default
 * Flannel keeps), the node's underlay address as source, on the underlay
 * link, learning off (peers are programmed, never learned), MTU the
 * underlay's less the 50-byte VXLAN encapsulation, and as its only address
 * the first address of the node's pod CIDR as a /32.
 *
 * Its MAC is derived from the cluster and node names, so a device made
 * again (after a reboot, or by a restarted agent) keeps the MAC its peers
 * were told about.
 */
import { createHash } from 'node:crypto';
import { CommandError, runAsync } from '../kernel/command.js';
import { type IpPrefix, formatIp } from '../netaddr/ip.js';
import type { AgentSettings } from './options.js';

export const vxlanDevice = 'vxlan0';
export const vxlanId = 1;
export const vxlanPort = 8472;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const vxlanOverhead = 50;

interface IpLink {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; local?: string; link?: string; port?: number; learning?: boolean };
  };
}

/** A locally administered unicast MAC from the cluster and node names. */
export function vxlanMacFor(cluster: string, node: string): string {
  const digest = createHash('sha256').update(`strata/${cluster}/${node}/vxlan`).digest();
  const bytes = [...digest.subarray(0, 6)];
  bytes[0] = ((bytes[0] ?? 0) & 0xfe) | 0x02;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A link as `ip -details` shows it; undefined when there is none. */
export async function showLink(name: string): Promise<IpLink | undefined> {
  try {
    const { stdout } = await runAsync('ip', ['-j', '-d', 'link', 'show', 'dev', name]);
    return (JSON.parse(stdout) as IpLink[])[0];
  } catch (error) {
    if (error instanceof CommandError && /does not exist/.test(error.stderr)) return undefined;
    throw error;
  }
}

/** Whether an existing device is the one this node wants. */
function matches(link: IpLink, settings: AgentSettings, mac: string): boolean {
  const data = link.linkinfo?.info_data;
  return (
    link.linkinfo?.info_kind === 'vxlan' &&
    data?.id === vxlanId &&
    data.port === vxlanPort &&
    data.local === settings.nodeIpText &&
    data.link === settings.nodeInterface &&
    data.learning === false &&
    link.address === mac
  );
}

/** Makes vxlan0 (again, if it differs) and brings it up; returns its MAC. */
export async function ensureVxlanDevice(settings: AgentSettings): Promise<string> {
  const mac = vxlanMacFor(settings.cluster, settings.nodeName);
  const underlay = await showLink(settings.nodeInterface);
  if (!underlay) {
    throw new Error(
      `Cannot make ${vxlanDevice}: the underlay link ${settings.nodeInterface} does not exist in the node's namespace`,
    );
  }
  const existing = await showLink(vxlanDevice);
  if (existing && !matches(existing, settings, mac)) {
    settings.log(`${vxlanDevice} exists with other settings: making it again`);
    await runAsync('ip', ['link', 'del', 'dev', vxlanDevice]);
  }
  if (!existing || !matches(existing, settings, mac)) {
    await runAsync('ip', [
      'link',
      'add',
      vxlanDevice,
      'address',
      mac,
      'mtu',
      String(underlay.mtu - vxlanOverhead),
      'type',
      'vxlan',
      'id',
      String(vxlanId),
      'dstport',
      String(vxlanPort),
      'local',
      settings.nodeIpText,
      'dev',
      settings.nodeInterface,
      'nolearning',
    ]);
  }
  await runAsync('ip', ['link', 'set', 'dev', vxlanDevice, 'up']);
  return mac;
}

/** The pods' MTU with the vxlan backend. */
export async function vxlanPodMtu(settings: AgentSettings): Promise<number | undefined> {
  const underlay = await showLink(settings.nodeInterface);
  return underlay ? underlay.mtu - vxlanOverhead : undefined;
}

/** Gives vxlan0 the pod CIDR's network address as a /32, and no other address. */
export async function ensureVxlanAddress(podCidr: IpPrefix): Promise<void> {
  const wanted = `${formatIp(podCidr.address)}/32`;
  const { stdout } = await runAsync('ip', ['-j', '-4', 'addr', 'show', 'dev', vxlanDevice]);
  const shown = JSON.parse(stdout) as { addr_info?: { local: string; prefixlen: number }[] }[];
  const present = (shown[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  for (const address of present) {
    if (address !== wanted) await runAsync('ip', ['addr', 'del', address, 'dev', vxlanDevice]);
  }
  if (!present.includes(wanted)) await runAsync('ip', ['addr', 'add', wanted, 'dev', vxlanDevice]);
}

/** With the host-gw backend, a vxlan0 left from an earlier vxlan run goes (its routes with it). */
export async function removeVxlanDevice(): Promise<void> {
  if (await showLink(vxlanDevice)) await runAsync('ip', ['link', 'del', 'dev', vxlanDevice]);
}
