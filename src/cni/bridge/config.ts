/**
 * The strata-cni network configuration: the reference `bridge` plugin's
 * fields with the same names and defaults, so an existing bridge conflist
 * works by changing its `type`. Fields of the reference plugin that strata
 * does not implement are refused with code 2, never ignored. One field is
 * strata's own, off by default: `routedPods` (docs/cni.md).
 */
import { CniError, CniErrorCode } from '../errors.js';
import { validateInterfaceName } from '../environment.js';
import type { CniEnvironment } from '../environment.js';
import type { NetConf } from '../netconf.js';

export interface BridgeConfig {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  enableDad: boolean;
  /** The reference field; also on whenever routedPods is. */
  portIsolation: boolean;
  /**
   * strata's own: pods on the bridge reach each other through the node's IP
   * layer instead of at L2 (isolated ports, proxy ARP on the bridge, IPv6
   * subnets routed via the gateway in the pod). Implies portIsolation.
   */
  routedPods: boolean;
  /** The MAC asked for by runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC=. */
  mac?: string;
}

/** Keys a configuration may carry that this plugin reads or that the runtime adds. */
const knownKeys = new Set([
  'cniVersion',
  'cniVersions',
  'name',
  'type',
  'ipam',
  'dns',
  'args',
  'runtimeConfig',
  'capabilities',
  'prevResult',
  'cni.dev/valid-attachments',
  'cni.dev/attachments',
  'bridge',
  'isGateway',
  'isDefaultGateway',
  'forceAddress',
  'ipMasq',
  'ipMasqBackend',
  'mtu',
  'hairpinMode',
  'promiscMode',
  'enabledad',
  'portIsolation',
  'routedPods',
  // Only meaningful with vlan, which is refused; the reference ignores it otherwise.
  'preserveDefaultVlan',
]);

/** Reference bridge fields strata does not implement, with the value that means "off". */
const unsupportedUnlessDefault: Record<string, unknown> = {
  vlan: 0,
  vlanTrunk: [],
  macspoofchk: false,
  disableContainerInterface: false,
};

function unsupported(key: string, value: unknown, why: string): CniError {
  return new CniError(
    CniErrorCode.UnsupportedField,
    `unsupported field in network configuration: "${key}": ${JSON.stringify(value)} (${why})`,
  );
}

function flag(raw: Record<string, unknown>, key: string): boolean {
  const value = raw[key];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `${key} must be true or false, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

const macPattern = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function parseMac(value: unknown, field: string): string {
  if (typeof value !== 'string' || !macPattern.test(value)) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `${field}: not a MAC address: ${JSON.stringify(value)}`,
    );
  }
  if ((parseInt(value.slice(0, 2), 16) & 1) === 1) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `${field}: ${value} is a multicast address`,
    );
  }
  return value.toLowerCase();
}

/** Reads the bridge-specific fields of a network configuration. */
export function parseBridgeConfig(conf: NetConf, env?: CniEnvironment): BridgeConfig {
  const raw = conf.raw;
  for (const [key, off] of Object.entries(unsupportedUnlessDefault)) {
    const value = raw[key];
    if (value !== undefined && value !== null && JSON.stringify(value) !== JSON.stringify(off)) {
      throw unsupported(
        key,
        value,
        'bridge VLAN filtering and MAC spoof checking are not implemented by strata-cni',
      );
    }
  }
  for (const key of Object.keys(raw)) {
    if (!knownKeys.has(key) && !(key in unsupportedUnlessDefault)) {
      throw unsupported(key, raw[key], 'strata-cni does not know this field');
    }
  }
  if (raw.ipMasqBackend !== undefined && raw.ipMasqBackend !== 'nftables') {
    throw unsupported(
      'ipMasqBackend',
      raw.ipMasqBackend,
      'strata-cni masquerades with nftables only',
    );
  }
  const bridge = raw.bridge === undefined ? 'cni0' : raw.bridge;
  if (typeof bridge !== 'string') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `bridge must be an interface name, got ${JSON.stringify(bridge)}`,
    );
  }
  try {
    validateInterfaceName(bridge, 'bridge');
  } catch (error) {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, (error as Error).message);
  }
  const config: BridgeConfig = {
    bridge,
    isDefaultGateway: flag(raw, 'isDefaultGateway'),
    isGateway: flag(raw, 'isGateway') || flag(raw, 'isDefaultGateway'),
    forceAddress: flag(raw, 'forceAddress'),
    ipMasq: flag(raw, 'ipMasq'),
    hairpinMode: flag(raw, 'hairpinMode'),
    promiscMode: flag(raw, 'promiscMode'),
    enableDad: flag(raw, 'enabledad'),
    portIsolation: flag(raw, 'portIsolation') || flag(raw, 'routedPods'),
    routedPods: flag(raw, 'routedPods'),
  };
  if (config.routedPods && !config.isGateway) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'routedPods needs isGateway (or isDefaultGateway): pods reach each other through the gateway address on the bridge',
    );
  }
  if (config.hairpinMode && config.promiscMode) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'hairpinMode and promiscMode cannot both be true: the bridge would deliver each frame twice',
    );
  }
  if (raw.mtu !== undefined && raw.mtu !== 0) {
    if (
      typeof raw.mtu !== 'number' ||
      !Number.isInteger(raw.mtu) ||
      raw.mtu < 68 ||
      raw.mtu > 65535
    ) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `mtu must be an integer from 68 to 65535, got ${JSON.stringify(raw.mtu)}`,
      );
    }
    config.mtu = raw.mtu;
  }
  const portMappings = conf.runtimeConfig.portMappings;
  if (Array.isArray(portMappings) && portMappings.length > 0) {
    throw unsupported(
      'runtimeConfig.portMappings',
      portMappings,
      'strata-cni does not map host ports itself; chain the portmap plugin after it',
    );
  }
  const cniArgs = conf.args.cni as Record<string, unknown> | undefined;
  if (conf.runtimeConfig.mac !== undefined)
    config.mac = parseMac(conf.runtimeConfig.mac, 'runtimeConfig.mac');
  else if (cniArgs?.mac !== undefined) config.mac = parseMac(cniArgs.mac, 'args.cni.mac');
  else if (env?.args.get('MAC')) config.mac = parseMac(env.args.get('MAC'), 'CNI_ARGS MAC');
  return config;
}
