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
import { execDelegate } from '../delegate.js';
import { checkpoint } from '../checkpoints.js';
import {
  applyMasqueradeAdd,
  applyMasqueradeBase,
  applyMasqueradeRemove,
  listMasquerade,
  type MasqueradeEntry,
} from '../masquerade.js';
import { ipBatch } from '../../kernel/ip.js';
import { ensureSysctl, linkAttribute, linkKind, linkNames } from '../../kernel/sysfs.js';
import { defaultRoute, familyOf, parsePrefix } from '../../netaddr/ip.js';
import {
  ipamAdd,
  ipamAddresses,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamStatus,
  ipamType,
} from '../../ipam/plugin.js';
import { existsSync } from 'node:fs';
import { type BridgeConfig, parseBridgeConfig } from './config.js';
import {
  bridgeAddresses,
  compileContainerSide,
  compileHostSide,
  ensureBridge,
  firstAddress,
  gatewayPrefix,
  hostVethName,
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

async function allocate(conf: NetConf, env: CniEnvironment, stdin: string): Promise<CniResult> {
  const type = ipamTypeOf(conf);
  if (type === ipamType) return ipamAdd(conf, env);
  const result = execDelegate(type, 'ADD', stdin, env);
  if (!result || result.ips.length === 0) {
    throw new CniError(CniErrorCode.Internal, `IPAM plugin ${type} returned no IP configuration`);
  }
  return result;
}

async function release(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  const type = ipamTypeOf(conf);
  if (type === ipamType) await ipamDel(conf, env);
  else execDelegate(type, 'DEL', stdin, env);
}

async function add(conf: NetConf, env: CniEnvironment, stdin: string): Promise<CniResult> {
  checkArgs(env.args, knownArgs);
  const config = parseBridgeConfig(conf, env);
  if (!existsSync(env.netns)) {
    throw new CniError(
      CniErrorCode.UnknownContainer,
      `CNI_NETNS: network namespace ${env.netns} does not exist`,
    );
  }
  const hostVeth = hostVethName(conf.name, env.containerId, env.ifname);
  checkpoint('start');
  const undo: (() => void | Promise<void>)[] = [];
  try {
    const ipam = await allocate(conf, env, stdin);
    undo.push(() => release(conf, env, stdin));
    checkpoint('after-ipam');

    const result = emptyResult();
    result.ips = ipam.ips;
    result.routes = ipam.routes;
    result.dns = conf.dns.nameservers?.length || conf.dns.search?.length ? conf.dns : ipam.dns;
    const gateways = planGateways(config, result);

    ensureBridge(config);
    checkpoint('after-bridge');
    const bridgePlan = planBridgeAddresses(
      config.bridge,
      gateways.length > 0 ? bridgeAddresses(config.bridge) : [],
      gateways,
      config.forceAddress,
    );

    // A host end under this name can only be left from a crashed attempt of this very attachment.
    if (linkKind(hostVeth) !== 'absent') ipBatch([`link del ${hostVeth}`]);
    const mac = config.mac ?? randomMac();
    undo.push(() => {
      if (linkKind(hostVeth) !== 'absent') ipBatch([`link del ${hostVeth}`]);
    });
    try {
      ipBatch(
        compileHostSide({
          config,
          hostVeth,
          alias: ownerAlias(conf.name, env.containerId, env.ifname),
          ifname: env.ifname,
          netns: env.netns,
          mac,
          bridgePlan,
        }),
      );
    } catch (error) {
      if (
        (error as Error).message.includes('File exists') &&
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
    checkpoint('after-veth');

    ipBatch(compileContainerSide(env.ifname, result.ips, result.routes, config.enableDad), {
      netns: env.netns,
    });
    checkpoint('after-container');

    if (config.isGateway) {
      const families = new Set(result.ips.map((ip) => familyOf(ip.address)));
      if (families.has(4)) ensureSysctl('net.ipv4.ip_forward', '1');
      if (families.has(6)) ensureSysctl('net.ipv6.conf.all.forwarding', '1');
    }

    if (config.ipMasq) {
      const entries = masqueradeEntries(
        conf,
        hostVeth,
        result.ips.map((ip) => ip.address),
      );
      undo.push(() => {
        applyMasqueradeRemove(entries);
      });
      applyMasqueradeAdd(entries);
      checkpoint('after-masquerade');
    }

    result.interfaces = [
      { name: config.bridge, mac: linkAttribute(config.bridge, 'address') ?? '' },
      { name: hostVeth, mac: linkAttribute(hostVeth, 'address') ?? '' },
      { name: env.ifname, mac, sandbox: env.netns },
    ];
    if (config.mtu) for (const i of result.interfaces) i.mtu = config.mtu;
    checkpoint('done');
    return result;
  } catch (error) {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        // Keep undoing; the original error is what the runtime must see.
      }
    }
    throw error;
  }
}

/** The addresses an attachment holds: from the store, else from the prevResult. */
async function addressesOf(conf: NetConf, env: CniEnvironment): Promise<string[]> {
  if (conf.ipam?.type === ipamType) {
    const owned = await ipamAddresses(conf, env);
    if (owned.length > 0) return owned;
  }
  return (conf.prevResult?.ips ?? []).map((ip) => ip.address);
}

async function del(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  checkArgs(env.args, knownArgs);
  const config = parseBridgeConfig(conf);
  const hostVeth = hostVethName(conf.name, env.containerId, env.ifname);
  if (config.ipMasq) {
    const addresses = await addressesOf(conf, env);
    let entries = masqueradeEntries(conf, hostVeth, addresses);
    if (entries.length === 0) {
      const owner = masqueradeOwner(conf, hostVeth);
      entries = listMasquerade().filter((e) => e.owner === owner);
    }
    applyMasqueradeRemove(entries);
  }
  // Deleting the host end removes the container end with it.
  if (linkKind(hostVeth) !== 'absent') {
    try {
      ipBatch([`link del ${hostVeth}`]);
    } catch (error) {
      if (linkKind(hostVeth) !== 'absent') throw error;
    }
  }
  await release(conf, env, stdin);
}

async function check(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  const config = parseBridgeConfig(conf, env);
  const type = ipamTypeOf(conf);
  if (type === ipamType) await ipamCheck(conf, env);
  else execDelegate(type, 'CHECK', stdin, env);
  checkAttachment(config, conf, env, hostVethName(conf.name, env.containerId, env.ifname));
}

async function status(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void> {
  parseBridgeConfig(conf);
  const type = ipamTypeOf(conf);
  if (type === ipamType) await ipamStatus(conf);
  else execDelegate(type, 'STATUS', stdin, env);
}

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

  // Host ends: those the store still records, and any link whose alias names this network.
  const staleVeths = new Set<string>();
  const type = ipamTypeOf(conf);
  if (type === ipamType) {
    const stale = await ipamGc(conf, conf.validAttachments);
    for (const a of stale) {
      if (a.containerId !== '') staleVeths.add(hostVethName(conf.name, a.containerId, a.ifname));
    }
  }
  for (const link of linkNames()) {
    const owner = parseOwnerAlias(linkAttribute(link, 'ifalias') ?? '');
    if (owner?.network === conf.name && !keep.has(link)) staleVeths.add(link);
  }
  const toDelete = [...staleVeths].filter((l) => !keep.has(l) && linkKind(l) !== 'absent');
  for (const link of toDelete) {
    try {
      ipBatch([`link del ${link}`]);
    } catch {
      // Gone between the look and the delete.
    }
  }

  if (config.ipMasq || listMasquerade().length > 0) {
    const prefix = `${conf.name.slice(0, 64)} `;
    const leftovers = listMasquerade().filter(
      (e) => e.owner.startsWith(prefix) && !keep.has(e.owner.slice(prefix.length)),
    );
    applyMasqueradeRemove(leftovers);
    if (config.ipMasq) applyMasqueradeBase();
  }
  if (type !== ipamType) execDelegate(type, 'GC', stdin, env);
}

export const bridgePlugin: CniPlugin = { add, del, check, status, gc };
