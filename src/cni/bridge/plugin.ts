/**
 * strata-cni: attaches a pod to the node's bridge. The spine follows the
 * reference bridge plugin (cmdAdd, cmdDel, cmdCheck) and adds STATUS and GC.
 *
 * The IPAM allocation is made first and released last, so it is the durable
 * record of an attachment: whatever a crash leaves behind, DEL and GC can
 * find from it (and from the owner alias and masquerade comments when IPAM
 * is delegated).
 */
import { CniError, CniErrorCode } from '../errors.js';
import type { CniEnvironment } from '../environment.js';
import { checkArgs } from '../environment.js';
import type { NetConf } from '../netconf.js';
import { type CniResult, emptyResult } from '../result.js';
import type { CniPlugin } from '../skel.js';
import { execDelegate, findPlugin } from '../delegate.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { checkpoint } from '../checkpoints.js';
import {
  applyMasqueradeAdd,
  applyMasqueradeBase,
  applyMasqueradeRemove,
  listMasquerade,
  type MasqueradeEntry,
} from '../masquerade.js';
import { deleteLink } from '../../kernel/netlink/route.js';
import { NetlinkError, RouteSocket } from '../../kernel/netlink/socket.js';
import {
  ensureSysctl,
  linkAttribute,
  linkKind,
  linkMaster,
  linkNames,
} from '../../kernel/sysfs.js';
import { defaultRoute, familyOf, parsePrefix } from '../../netaddr/ip.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, ipamType } from '../../ipam/plugin.js';
import { existsSync } from 'node:fs';
import { type BridgeConfig, parseBridgeConfig } from './config.js';
import {
  bridgeAddresses,
  compileContainerSide,
  applyBridgeAddresses,
  applyContainerSide,
  applyHostVeth,
  compileHostVeth,
  ensureBridge,
  firstAddress,
  gatewayPrefix,
  hostVethName,
  isStrataVethName,
  ownerAlias,
  parseOwnerAlias,
  planBridgeAddresses,
  randomMac,
} from './links.js';
import { checkAttachment } from './check.js';

const knownArgs = [
  'IP',
  'MAC',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
];

function ipamTypeOf(conf: NetConf): string {
  const type = conf.ipam?.type;
  if (typeof type !== 'string' || type === '') {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, 'ipam.type must name an IPAM plugin');
  }
  return type;
}

/** The masquerade comment: the network (shortened past 64 characters) and the host veth. */
function masqueradeOwner(conf: NetConf, hostVeth: string): string {
  return `${conf.name.slice(0, 64)} ${hostVeth}`;
}

function masqueradeEntries(
  conf: NetConf,
  hostVeth: string,
  addresses: readonly string[],
): MasqueradeEntry[] {
  const owner = masqueradeOwner(conf, hostVeth);
  return addresses.map((address) => ({ address, owner }));
}

/** Gateways and default routes, as the reference plugin's calcGateways does. */
function planGateways(config: BridgeConfig, result: CniResult): string[] {
  const bridgeAddrs: string[] = [];
  const defaultDone = new Set<number>();
  for (const ip of result.ips) {
    const prefix = parsePrefix(ip.address);
    if (!prefix) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `IPAM returned an invalid address "${ip.address}"`,
      );
    }
    const family = prefix.address.family;
    ip.interface = 2;
    if (!ip.gateway && config.isGateway) ip.gateway = firstAddress(prefix);
    if (config.isGateway) {
      const gw = gatewayPrefix(ip);
      if (gw && !bridgeAddrs.includes(gw)) bridgeAddrs.push(gw);
    }
    if (config.isDefaultGateway && ip.gateway && !defaultDone.has(family)) {
      defaultDone.add(family);
      const haveDefault = result.routes.some((r) => r.dst === defaultRoute(family) && r.gw);
      if (!haveDefault) result.routes.push({ dst: defaultRoute(family), gw: ip.gateway });
    }
  }
  return bridgeAddrs;
}

/**
 * Refuses a configuration whose IPAM part cannot work before anything is
 * changed: strata-ipam's ranges are parsed, another IPAM plugin must be in
 * CNI_PATH.
 */
function preflightIpam(conf: NetConf, env: CniEnvironment): void {
  const type = ipamTypeOf(conf);
  if (type === ipamType) parseIpamConfig(conf.ipam);
  else findPlugin(type, env.path, 'ipam.type');
}

async function allocate(conf: NetConf, env: CniEnvironment, stdin: string): Promise<CniResult> {
  const type = ipamTypeOf(conf);
  if (type === ipamType) return ipamAdd(conf, env);
  const result = await execDelegate(type, 'ADD', stdin, env);
  if (!result || result.ips.length === 0) {
    throw new CniError(CniErrorCode.Internal, `IPAM plugin ${type} returned no IP configuration`);
  }
  return result;
}

/** Releases the attachment's addresses; returns them when strata-ipam holds them. */
async function release(conf: NetConf, env: CniEnvironment, stdin: string): Promise<string[]> {
  const type = ipamTypeOf(conf);
  if (type === ipamType) return ipamDel(conf, env);
  await execDelegate(type, 'DEL', stdin, env);
  return [];
}

/**
 * ADD, in the order that keeps a crash recoverable: the allocation first
 * (the durable record GC starts from), then the links over rtnetlink in this
 * process, while the masquerade elements go in through nft in a process of
 * their own. Whatever fails, every step already taken is undone.
 */
async function add(conf: NetConf, env: CniEnvironment, stdin: string): Promise<CniResult> {
  checkArgs(env.args, knownArgs);
  const config = parseBridgeConfig(conf, env);
  if (!existsSync(env.netns)) {
    throw new CniError(
      CniErrorCode.UnknownContainer,
      `CNI_NETNS: network namespace ${env.netns} does not exist`,
    );
  }
  preflightIpam(conf, env);
  const hostVeth = hostVethName(conf.name, env.containerId, env.ifname);
  const mac = config.mac ?? randomMac();
  checkpoint('start');
  const node = await RouteSocket.open();
  const undo: (() => Promise<unknown> | undefined)[] = [];
  let masqueradeStep: Promise<void> = Promise.resolve();
  try {
    const ipam = await allocate(conf, env, stdin);
    undo.push(() => release(conf, env, stdin));
    checkpoint('after-ipam');

    const result = emptyResult();
    result.ips = ipam.ips;
    result.routes = ipam.routes;
    result.dns = conf.dns.nameservers?.length || conf.dns.search?.length ? conf.dns : ipam.dns;
    const gateways = planGateways(config, result);
    const masquerade = config.ipMasq
      ? masqueradeEntries(
          conf,
          hostVeth,
          result.ips.map((ip) => ip.address),
        )
      : [];
    if (masquerade.length > 0) {
      undo.push(() => applyMasqueradeRemove(masquerade));
      masqueradeStep = applyMasqueradeAdd(masquerade);
    }
    const containerSteps = compileContainerSide(result.ips, result.routes, config.enableDad);

    const bridgeIndex = ensureBridge(node, config);
    checkpoint('after-bridge');
    const bridgePlan = planBridgeAddresses(
      config.bridge,
      gateways.length > 0 ? bridgeAddresses(node, bridgeIndex, gateways) : [],
      gateways,
      config.forceAddress,
    );

    // A host end under this name can only be left from a crashed attempt of this very attachment.
    deleteLink(node, hostVeth);
    undo.push(() => {
      deleteLink(node, hostVeth);
      return undefined;
    });
    const vethPlan = compileHostVeth({
      config,
      hostVeth,
      alias: ownerAlias(conf.name, env.containerId, env.ifname),
      ifname: env.ifname,
      netns: env.netns,
      mac,
    });
    try {
      applyHostVeth(node, vethPlan, bridgeIndex, env.netns);
    } catch (error) {
      if (
        error instanceof NetlinkError &&
        error.code === 'EEXIST' &&
        linkKind(hostVeth) === 'absent'
      ) {
        throw new CniError(
          CniErrorCode.InvalidNetworkConfig,
          `container interface ${env.ifname} already exists in ${env.netns}`,
          { cause: error },
        );
      }
      throw error;
    }
    applyBridgeAddresses(node, bridgeIndex, bridgePlan);
    checkpoint('after-veth');

    const pod = await RouteSocket.open(env.netns);
    try {
      applyContainerSide(pod, env.ifname, containerSteps);
    } finally {
      pod.close();
    }
    checkpoint('after-container');

    if (config.isGateway) {
      const families = new Set(result.ips.map((ip) => familyOf(ip.address)));
      if (families.has(4)) ensureSysctl('net.ipv4.ip_forward', '1');
      if (families.has(6)) ensureSysctl('net.ipv6.conf.all.forwarding', '1');
    }
    await masqueradeStep;
    if (masquerade.length > 0) checkpoint('after-masquerade');

    result.interfaces = [
      { name: config.bridge, mac: linkAttribute(config.bridge, 'address') ?? '' },
      { name: hostVeth, mac: linkAttribute(hostVeth, 'address') ?? '' },
      { name: env.ifname, mac, sandbox: env.netns },
    ];
    if (config.mtu) for (const i of result.interfaces) i.mtu = config.mtu;
    checkpoint('done');
    return result;
  } catch (error) {
    // A sibling step still running must finish before its undo runs.
    await masqueradeStep.catch(() => undefined);
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        // Keep undoing; the original error is what the runtime must see.
      }
    }
    throw error;
  } finally {
    node.close();
  }
}

/**
 * DEL. Removing the host end takes the container end with it. The kernel
 * makes both the link deletion and the element deletion wait an RCU grace
 * period, so the nft process removing the masquerade elements runs while
 * this one deletes the link. Anything already gone is success (CNI spec
 * 1.1.0, "DEL").
 */
async function del(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  checkArgs(env.args, knownArgs);
  const config = parseBridgeConfig(conf);
  const hostVeth = hostVethName(conf.name, env.containerId, env.ifname);
  const released = await release(conf, env, stdin);
  let masqueradeStep: Promise<void> = Promise.resolve();
  if (config.ipMasq) {
    const addresses =
      released.length > 0 ? released : (conf.prevResult?.ips ?? []).map((ip) => ip.address);
    let entries = masqueradeEntries(conf, hostVeth, addresses);
    if (entries.length === 0) {
      // Nothing says which addresses it had: find its elements by their owner comment.
      const owner = masqueradeOwner(conf, hostVeth);
      entries = listMasquerade().filter((e) => e.owner === owner);
    }
    masqueradeStep = applyMasqueradeRemove(entries);
  }
  try {
    const node = await RouteSocket.open();
    try {
      deleteLink(node, hostVeth);
    } finally {
      node.close();
    }
  } finally {
    await masqueradeStep;
  }
}

async function check(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  const config = parseBridgeConfig(conf, env);
  const type = ipamTypeOf(conf);
  if (type === ipamType) await ipamCheck(conf, env);
  else await execDelegate(type, 'CHECK', stdin, env);
  await checkAttachment(config, conf, env, hostVethName(conf.name, env.containerId, env.ifname));
}

async function status(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  parseBridgeConfig(conf);
  const type = ipamTypeOf(conf);
  if (type === ipamType) await ipamStatus(conf);
  else await execDelegate(type, 'STATUS', stdin, env);
}

/**
 * GC (CNI spec 1.1.0): removes every trace of attachments the runtime no
 * longer lists: their allocations, their host ends (found from the store,
 * from the owner alias on the link, or, for a link a crash left without its
 * alias, from the strata name pattern on this network's bridge) and their
 * masquerade elements (found by owner comment).
 */
async function gc(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  const config = parseBridgeConfig(conf);
  if (!conf.validAttachments) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'GC needs cni.dev/valid-attachments: without it every attachment would look stale',
    );
  }
  const keep = new Set(
    conf.validAttachments.map((a) => hostVethName(conf.name, a.containerId, a.ifname)),
  );
  const stale = new Set<string>();
  const type = ipamTypeOf(conf);
  if (type === ipamType) {
    for (const a of await ipamGc(conf, conf.validAttachments)) {
      if (a.containerId !== '') stale.add(hostVethName(conf.name, a.containerId, a.ifname));
    }
  }
  for (const link of linkNames()) {
    if (keep.has(link)) continue;
    const alias = linkAttribute(link, 'ifalias') ?? '';
    const owner = parseOwnerAlias(alias);
    if (owner?.network === conf.name) stale.add(link);
    else if (alias === '' && isStrataVethName(link) && linkMaster(link) === config.bridge)
      stale.add(link);
  }
  const node = await RouteSocket.open();
  try {
    for (const link of stale) deleteLink(node, link);
  } finally {
    node.close();
  }

  const prefix = `${conf.name.slice(0, 64)} `;
  const leftovers = listMasquerade().filter(
    (e) => e.owner.startsWith(prefix) && !keep.has(e.owner.slice(prefix.length)),
  );
  await applyMasqueradeRemove(leftovers);
  if (config.ipMasq) applyMasqueradeBase();
  if (type !== ipamType) await execDelegate(type, 'GC', stdin, env);
}

export const bridgePlugin: CniPlugin = { add, del, check, status, gc };
