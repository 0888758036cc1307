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
import { deleteLink, getLink, listLinks } from '../../kernel/netlink/route.js';
import { NetlinkError, RouteSocket } from '../../kernel/netlink/socket.js';
import { ensureSysctl } from '../../kernel/sysctl.js';
import { defaultRoute, familyOf, networkOf, parsePrefix } from '../../netaddr/ip.js';
import {
  ipamAdd,
  ipamAddresses,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamStale,
  ipamStatus,
  ipamType,
} from '../../ipam/plugin.js';
import { existsSync } from 'node:fs';
import { type BridgeConfig, parseBridgeConfig } from './config.js';
import {
  bridgeAddresses,
  compileContainerSide,
  applyBridgeAddresses,
  applyContainerSide,
  applyHostVeth,
  applySysctls,
  applySysctlsIn,
  compileBridgeSysctls,
  compileHostVeth,
  compilePodSysctls,
  ensureBridge,
  firstAddress,
  gatewayPrefix,
  hostVethName,
  shortName,
  ownerAlias,
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
  return `${shortName(conf.name, 64)} ${hostVeth}`;
}

function masqueradeEntries(
  conf: NetConf,
  hostVeth: string,
  addresses: readonly string[],
): MasqueradeEntry[] {
  const owner = masqueradeOwner(conf, hostVeth);
  return addresses.map((address) => ({ address, owner }));
}

function sameDestination(a: string, b: string): boolean {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  return !!pa && !!pb && pa.length === pb.length && networkOf(pa) === networkOf(pb);
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
      // An IPAM default route without gw goes via this gateway anyway (libcni's
      // ConfigureIface), so it already is the route isDefaultGateway asks for.
      const haveDefault = result.routes.some((r) => sameDestination(r.dst, defaultRoute(family)));
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
    // The configuration's dns wins when any of it is set, as the reference dnsConfSet decides.
    const dnsSet =
      !!conf.dns.nameservers?.length ||
      !!conf.dns.search?.length ||
      !!conf.dns.domain ||
      !!conf.dns.options?.length;
    result.dns = dnsSet ? conf.dns : ipam.dns;
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
    const containerSteps = compileContainerSide(
      result.ips,
      result.routes,
      config.enableDad,
      config.routedPods,
    );

    const bridge = ensureBridge(node, config);
    // Bridge-wide, like the gateway address: stays when a later step fails.
    applySysctls(compileBridgeSysctls(config, result.ips));
    checkpoint('after-bridge');
    const bridgePlan = planBridgeAddresses(
      config.bridge,
      gateways.length > 0 ? bridgeAddresses(node, bridge.index, gateways) : [],
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
      hostMac: randomMac(),
    });
    try {
      applyHostVeth(node, vethPlan, bridge.index, env.netns);
    } catch (error) {
      if (error instanceof NetlinkError && error.code === 'EEXIST' && !getLink(node, hostVeth)) {
        throw new CniError(
          CniErrorCode.InvalidNetworkConfig,
          `container interface ${env.ifname} already exists in ${env.netns}`,
          { cause: error },
        );
      }
      throw error;
    }
    applyBridgeAddresses(node, bridge, bridgePlan);
    checkpoint('after-veth');

    const pod = await RouteSocket.open(env.netns);
    try {
      applyContainerSide(pod, env.ifname, containerSteps);
    } finally {
      pod.close();
    }
    await applySysctlsIn(env.netns, compilePodSysctls(config, env.ifname, result.ips));
    checkpoint('after-container');

    if (config.isGateway) {
      const families = new Set(result.ips.map((ip) => familyOf(ip.address)));
      if (families.has(4)) ensureSysctl('net.ipv4.ip_forward', '1');
      if (families.has(6)) ensureSysctl('net.ipv6.conf.all.forwarding', '1');
    }
    await masqueradeStep;
    if (masquerade.length > 0) checkpoint('after-masquerade');

    result.interfaces = [
      { name: config.bridge, mac: getLink(node, config.bridge)?.mac ?? bridge.mac },
      { name: hostVeth, mac: vethPlan.mac },
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
 * DEL. The allocation is released last, as it was made first: until the
 * link and the masquerade elements are gone, the address cannot be handed
 * to another pod (whose element would otherwise be the one removed).
 * Removing the host end takes the container end with it; the kernel makes
 * both the link deletion and the element deletion wait an RCU grace period,
 * so the nft process removing the elements runs while this one deletes the
 * link. Anything already gone is success (CNI spec 1.1.0, "DEL").
 */
async function del(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  checkArgs(env.args, knownArgs);
  const config = parseBridgeConfig(conf);
  const hostVeth = hostVethName(conf.name, env.containerId, env.ifname);
  let masqueradeStep: Promise<void> = Promise.resolve();
  if (config.ipMasq) {
    // Addresses the store still holds for this attachment are its own, and so are their
    // elements. Anything else (a prevResult, a delegated IPAM) may name an address that
    // has since gone to another pod: then only elements carrying this owner go.
    const held = ipamTypeOf(conf) === ipamType ? await ipamAddresses(conf, env) : [];
    const owner = masqueradeOwner(conf, hostVeth);
    const entries =
      held.length > 0
        ? masqueradeEntries(conf, hostVeth, held)
        : listMasquerade().filter((e) => e.owner === owner);
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
  await release(conf, env, stdin);
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
 * longer lists: their host ends (named after the allocations the store holds
 * for them, or carrying this network's owner alias), their masquerade
 * elements (by owner comment), and last their allocations. Each step goes
 * on when another fails, the delegated IPAM plugin always gets its GC, and
 * every failure is reported together, as the spec asks.
 *
 * The runtime must list every attachment it is still adding: one it has not
 * recorded yet looks stale.
 */
async function gc(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  const config = parseBridgeConfig(conf);
  const valid = conf.validAttachments;
  if (!valid) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'GC needs cni.dev/valid-attachments: without it every attachment would look stale',
    );
  }
  const failures: string[] = [];
  const step = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      failures.push(`${what}: ${(error as Error).message}`);
    }
  };
  const keep = new Set(valid.map((a) => hostVethName(conf.name, a.containerId, a.ifname)));
  const keepAliases = new Set(valid.map((a) => ownerAlias(conf.name, a.containerId, a.ifname)));
  const type = ipamTypeOf(conf);
  const stale = new Set<string>();
  await step('reading the allocations', async () => {
    if (type !== ipamType) return;
    for (const a of await ipamStale(conf, valid)) {
      if (a.containerId !== '') stale.add(hostVethName(conf.name, a.containerId, a.ifname));
    }
  });
  await step('removing host veths', async () => {
    const node = await RouteSocket.open();
    try {
      const network = ownerAlias(conf.name, '', '').replace(/ +$/, '') + ' ';
      for (const link of listLinks(node)) {
        if (keep.has(link.name)) continue;
        if (link.alias.startsWith(network) && !keepAliases.has(link.alias)) stale.add(link.name);
      }
      for (const link of stale) {
        if (!keep.has(link)) await step(`deleting ${link}`, () => deleteLink(node, link));
      }
    } finally {
      node.close();
    }
  });
  await step('removing masquerade elements', async () => {
    const prefix = `${shortName(conf.name, 64)} `;
    const leftovers = listMasquerade().filter(
      (e) => e.owner.startsWith(prefix) && !keep.has(e.owner.slice(prefix.length)),
    );
    await applyMasqueradeRemove(leftovers);
    if (config.ipMasq) applyMasqueradeBase();
  });
  await step('releasing allocations', async () => {
    if (type === ipamType) await ipamGc(conf, valid);
    else await execDelegate(type, 'GC', stdin, env);
  });
  if (failures.length > 0) {
    throw new CniError(CniErrorCode.Internal, `GC left work undone: ${failures.join('; ')}`);
  }
}

export const bridgePlugin: CniPlugin = { add, del, check, status, gc };
