/**
 * The configuration a plugin receives on stdin, derived from its plugin
 * configuration object (CNI spec 1.1.0, section 3 "Deriving execution
 * configuration from plugin configuration"): the list's `name` and
 * `cniVersion` are injected, `capabilities` removed, `runtimeConfig` built
 * from the declared capabilities, `prevResult` added; everything else passes
 * through unchanged. Pure functions: nothing here runs a plugin.
 */
import { type CniResult, encodeResult } from '../result.js';
import type { NetworkConfigList, PluginConfig } from './conflist.js';

/** An attachment the runtime still knows, as GC lists it (spec 1.1.0, "GC"). */
export interface GcAttachment {
  containerId: string;
  ifname: string;
}

/**
 * Spec 1.1.0, "Deriving runtimeConfig": only the capabilities the plugin
 * declares, and only those the runtime has data for (libcni injectRuntimeConfig).
 */
export function deriveRuntimeConfig(
  plugin: PluginConfig,
  capabilityArgs: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const runtimeConfig: Record<string, unknown> = {};
  for (const capability of plugin.capabilities) {
    if (Object.hasOwn(capabilityArgs, capability) && capabilityArgs[capability] !== undefined) {
      runtimeConfig[capability] = capabilityArgs[capability];
    }
  }
  return runtimeConfig;
}

/** The fields every derived configuration shares: the plugin object with the list's name and version, without `capabilities`. */
function baseConfig(list: NetworkConfigList, plugin: PluginConfig): Record<string, unknown> {
  const config: Record<string, unknown> = { ...plugin.raw };
  // Spec 1.1.0 section 3: `capabilities` must be removed by the runtime.
  delete config.capabilities;
  config.name = list.name;
  config.cniVersion = list.cniVersion;
  return config;
}

/** ADD, DEL and CHECK: name, cniVersion, runtimeConfig and prevResult (in the list's version). */
export function deriveExecConfig(
  list: NetworkConfigList,
  plugin: PluginConfig,
  options: { prevResult?: CniResult; capabilityArgs?: Readonly<Record<string, unknown>> } = {},
): Record<string, unknown> {
  const config = baseConfig(list, plugin);
  const runtimeConfig = deriveRuntimeConfig(plugin, options.capabilityArgs);
  // As libcni: a runtimeConfig written in the file stays when the runtime has nothing to add.
  if (Object.keys(runtimeConfig).length > 0) config.runtimeConfig = runtimeConfig;
  if (options.prevResult) config.prevResult = encodeResult(options.prevResult, list.cniVersion);
  return config;
}

/**
 * GC: name, cniVersion and the valid attachments, under both keys as libcni
 * sends them (`cni.dev/attachments` was the spec's first spelling, cni#1101).
 */
export function deriveGcConfig(
  list: NetworkConfigList,
  plugin: PluginConfig,
  validAttachments: readonly GcAttachment[],
): Record<string, unknown> {
  const config = baseConfig(list, plugin);
  const attachments = validAttachments.map((a) => ({
    containerID: a.containerId,
    ifname: a.ifname,
  }));
  config['cni.dev/valid-attachments'] = attachments;
  config['cni.dev/attachments'] = attachments;
  return config;
}

/** STATUS: name and cniVersion only (spec 1.1.0, "STATUS"). */
export function deriveStatusConfig(
  list: NetworkConfigList,
  plugin: PluginConfig,
): Record<string, unknown> {
  return baseConfig(list, plugin);
}
