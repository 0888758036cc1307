/**
 * Network configuration lists run the way a container runtime runs them
 * (CNI spec 1.1.0, section 3 "Execution of Network Configurations"; libcni
 * api.go): ADD in list order, each plugin getting the previous one's result;
 * DEL in reverse order with the cached final result; CHECK in order; GC and
 * STATUS on every plugin. One attachment's operations must not run in
 * parallel (spec "Lifecycle & Ordering"); different attachments may.
 */
import { CniError, CniErrorCode, messageChain } from '../errors.js';
import { type CniCommand, validateContainerId, validateInterfaceName } from '../environment.js';
import { type CniResult, encodeResult } from '../result.js';
import { versionAtLeast } from '../version.js';
import { cacheAdd, cacheDel, getCachedAttachments, getCachedResult } from './cache.js';
import type { NetworkConfigList, PluginConfig } from './conflist.js';
import {
  type CniRuntimeConfig,
  type PluginRequest,
  PluginError,
  defaultCacheDir,
  execPlugin,
  execPluginWithResult,
  findInPath,
  getVersionInfo,
} from './invoke.js';
import {
  type GcAttachment,
  deriveExecConfig,
  deriveGcConfig,
  deriveStatusConfig,
} from './request.js';

/** The attachment parameters of one call (spec 1.1.0, "Attachment Parameters"; libcni RuntimeConf). */
export interface RuntimeConf {
  containerId: string;
  /** CNI_NETNS: the path of the container's network namespace. */
  netns: string;
  ifname: string;
  /** Generic arguments, passed as CNI_ARGS. */
  args?: [string, string][];
  /** Capability arguments (CONVENTIONS.md: portMappings, ips, mac, ...), given only to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

/** What GC is told: the attachments that are still valid (spec 1.1.0, "GC"). */
export interface GcArgs {
  validAttachments: GcAttachment[];
}

function labelOf(index: number, plugin: PluginConfig): string {
  return `plugins[${index}] (${plugin.type})`;
}

function cacheDirOf(runtime: CniRuntimeConfig): string {
  return runtime.cacheDir ?? defaultCacheDir;
}

/** libcni checks the attachment parameters before running anything. */
function validateAttachment(rt: RuntimeConf, command: CniCommand): void {
  validateContainerId(rt.containerId, 'CNI_CONTAINERID');
  validateInterfaceName(rt.ifname, 'CNI_IFNAME');
  if ((command === 'ADD' || command === 'CHECK') && !rt.netns.startsWith('/')) {
    throw new CniError(
      CniErrorCode.InvalidEnvironmentVariables,
      `CNI_NETNS must be the absolute path of the container's network namespace for ${command}: got ${JSON.stringify(rt.netns)}`,
    );
  }
}

function requirePlugins(list: NetworkConfigList): void {
  if (list.plugins.length === 0) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `${list.source}: network "${list.name}" has no plugins`,
    );
  }
}

function pluginPaths(runtime: CniRuntimeConfig, list: NetworkConfigList): string[] {
  requirePlugins(list);
  return list.plugins.map((plugin, i) =>
    findInPath(plugin.type, runtime.binDirs, `${list.source}: plugins[${i}].type`),
  );
}

function attachmentRequest(
  command: CniCommand,
  rt: RuntimeConf,
  config: Record<string, unknown>,
  label: string,
): PluginRequest {
  return {
    command,
    containerId: rt.containerId,
    netns: rt.netns,
    ifname: rt.ifname,
    args: rt.args ?? [],
    config,
    label,
  };
}

/** One error for several: the first one's code, every message, the errors as cause. */
function combine(errors: Error[]): Error {
  if (errors.length === 1 && errors[0]) return errors[0];
  const first = errors[0];
  return new CniError(
    first instanceof CniError ? first.code : CniErrorCode.Internal,
    errors.map((e) => messageChain(e)).join('; '),
    { cause: new AggregateError(errors) },
  );
}

/**
 * Runs VERSION on every plugin and fails unless each supports the list's
 * cniVersion (libcni ValidateNetworkList); returns the capabilities the list declares.
 */
export async function validateNetworkList(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
): Promise<string[]> {
  const paths = pluginPaths(runtime, list);
  const outcomes = await Promise.allSettled(
    list.plugins.map(async (plugin, i) => {
      const info = await getVersionInfo(runtime, paths[i] ?? '');
      if (!info.supportedVersions.includes(list.cniVersion)) {
        throw new PluginError(
          plugin.type,
          'VERSION',
          CniErrorCode.IncompatibleVersion,
          `does not support cniVersion "${list.cniVersion}" of network "${list.name}" (${list.source}); it supports [${info.supportedVersions.join(' ')}]`,
          { label: labelOf(i, plugin) },
        );
      }
    }),
  );
  const errors = outcomes.flatMap((o) =>
    o.status === 'rejected'
      ? [o.reason instanceof Error ? o.reason : new Error(String(o.reason))]
      : [],
  );
  if (errors.length > 0) throw combine(errors);
  return [...new Set(list.plugins.flatMap((p) => p.capabilities))];
}

/**
 * DELs the whole list in reverse after a failed ADD, best effort, as
 * containerd and CRI-O do (spec, "Error handling" of network configuration
 * lists: the runtime deletes every plugin, even those not called, and a
 * plugin must accept a DEL for something it never added). The failures are
 * recorded on the ADD's error, which is what the caller sees.
 */
async function undoAdd(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  paths: readonly string[],
  lastResult: CniResult | undefined,
  rt: RuntimeConf,
  failure: unknown,
): Promise<void> {
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const plugin = list.plugins[i];
    const path = paths[i];
    if (!plugin || !path) continue;
    const config = deriveExecConfig(list, plugin, {
      ...(lastResult ? { prevResult: lastResult } : {}),
      ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
    });
    try {
      await execPlugin(runtime, path, attachmentRequest('DEL', rt, config, labelOf(i, plugin)));
    } catch (error) {
      if (failure instanceof PluginError) failure.rollbackErrors.push(error as Error);
    }
  }
}

/**
 * Adds an attachment (spec 1.1.0, "Adding an attachment"): checks every
 * plugin's VERSION first, then runs ADD through the chain, each plugin
 * getting the previous result as prevResult, and caches the final result.
 * If plugin k fails, the whole list is deleted in reverse order and plugin
 * k's error is thrown.
 */
export async function addNetworkList(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  rt: RuntimeConf,
): Promise<CniResult> {
  validateAttachment(rt, 'ADD');
  const paths = pluginPaths(runtime, list);
  await validateNetworkList(runtime, list);
  let result: CniResult | undefined;
  for (const [i, plugin] of list.plugins.entries()) {
    const config = deriveExecConfig(list, plugin, {
      ...(result ? { prevResult: result } : {}),
      ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
    });
    try {
      result = await execPluginWithResult(
        runtime,
        paths[i] ?? '',
        attachmentRequest('ADD', rt, config, labelOf(i, plugin)),
      );
    } catch (error) {
      await undoAdd(runtime, list, paths, result, rt, error);
      throw error;
    }
  }
  if (!result)
    throw new CniError(CniErrorCode.Internal, `network "${list.name}" returned no result`);
  try {
    await cacheAdd(cacheDirOf(runtime), {
      containerId: rt.containerId,
      ifname: rt.ifname,
      network: list.name,
      netns: rt.netns,
      args: rt.args ?? [],
      capabilityArgs: rt.capabilityArgs ?? {},
      config: list.bytes,
      result: encodeResult(result, list.cniVersion),
    });
  } catch (error) {
    // Without the cached result DEL and CHECK could not be run right: undo rather than leave it half-known.
    await undoAdd(runtime, list, paths, result, rt, error);
    throw new CniError(
      CniErrorCode.IoFailure,
      `cannot cache the result of network "${list.name}" in ${cacheDirOf(runtime)}; the attachment was deleted again`,
      { cause: error },
    );
  }
  return result;
}

/**
 * The cached result, for DEL (libcni: a result that cannot be read is
 * dropped and DEL runs without prevResult; plugins must cope, spec "DEL").
 */
async function cachedResultForDel(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  rt: RuntimeConf,
): Promise<CniResult | undefined> {
  // prevResult on DEL arrived with spec 0.4.0.
  if (!versionAtLeast(list.cniVersion, '0.4.0')) return undefined;
  try {
    return await getCachedResult(cacheDirOf(runtime), list.name, rt);
  } catch {
    await cacheDel(cacheDirOf(runtime), list.name, rt);
    return undefined;
  }
}

/**
 * Deletes an attachment (spec 1.1.0, "Deleting an attachment"): DEL in
 * reverse order with the cached final result as prevResult; the first
 * failure halts and is thrown, keeping the cache for a retry; success
 * forgets the cached result.
 */
export async function delNetworkList(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  rt: RuntimeConf,
): Promise<void> {
  validateAttachment(rt, 'DEL');
  const paths = pluginPaths(runtime, list);
  const prevResult = await cachedResultForDel(runtime, list, rt);
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const plugin = list.plugins[i];
    if (!plugin) continue;
    const config = deriveExecConfig(list, plugin, {
      ...(prevResult ? { prevResult } : {}),
      ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
    });
    await execPlugin(
      runtime,
      paths[i] ?? '',
      attachmentRequest('DEL', rt, config, labelOf(i, plugin)),
    );
  }
  await cacheDel(cacheDirOf(runtime), list.name, rt);
}

/**
 * Checks an attachment (spec 1.1.0, "Checking an attachment"): CHECK in
 * order, each plugin getting the cached final result; nothing when the list
 * sets disableCheck. CHECK needs cniVersion 0.4.0 and a cached ADD.
 */
export async function checkNetworkList(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  rt: RuntimeConf,
): Promise<void> {
  if (!versionAtLeast(list.cniVersion, '0.4.0')) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `network "${list.name}" has cniVersion ${list.cniVersion}; CHECK needs 0.4.0 or later`,
    );
  }
  if (list.disableCheck) return;
  validateAttachment(rt, 'CHECK');
  const paths = pluginPaths(runtime, list);
  const prevResult = await getCachedResult(cacheDirOf(runtime), list.name, rt);
  if (!prevResult) {
    // Spec "CHECK": a runtime must not call CHECK for a container that has not been ADDed.
    throw new CniError(
      CniErrorCode.UnknownContainer,
      `no cached result for ${rt.containerId}/${rt.ifname} in network "${list.name}": CHECK needs the result of its ADD`,
    );
  }
  for (const [i, plugin] of list.plugins.entries()) {
    const config = deriveExecConfig(list, plugin, {
      prevResult,
      ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
    });
    await execPlugin(
      runtime,
      paths[i] ?? '',
      attachmentRequest('CHECK', rt, config, labelOf(i, plugin)),
    );
  }
}

/** The cached final result of an attachment's ADD, if any (libcni GetNetworkListCachedResult). */
export async function getNetworkListCachedResult(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  rt: Pick<RuntimeConf, 'containerId' | 'ifname'>,
): Promise<CniResult | undefined> {
  return getCachedResult(cacheDirOf(runtime), list.name, rt);
}

/**
 * Garbage-collects a network (spec 1.1.0, "Garbage-collecting a network";
 * libcni GCNetworkList): DELs every cached attachment of the network that is
 * not valid, then, for cniVersion 1.1.0 and later, runs GC on every plugin
 * with the valid attachments. Errors do not stop it; all are thrown together.
 * Nothing happens when the list sets disableGC.
 */
export async function gcNetworkList(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
  args: GcArgs,
): Promise<void> {
  if (list.disableGC) return;
  const valid = new Set(args.validAttachments.map((a) => `${a.containerId}\0${a.ifname}`));
  const errors: Error[] = [];
  for (const cached of await getCachedAttachments(cacheDirOf(runtime))) {
    if (cached.network !== list.name || valid.has(`${cached.containerId}\0${cached.ifname}`)) {
      continue;
    }
    try {
      await delNetworkList(runtime, list, {
        containerId: cached.containerId,
        netns: cached.netns,
        ifname: cached.ifname,
        args: cached.args,
        capabilityArgs: cached.capabilityArgs,
      });
    } catch (error) {
      errors.push(
        new CniError(
          error instanceof CniError ? error.code : CniErrorCode.Internal,
          `cannot delete stale attachment ${cached.containerId}/${cached.ifname}`,
          { cause: error },
        ),
      );
    }
  }
  if (versionAtLeast(list.cniVersion, '1.1.0')) {
    for (const [i, plugin] of list.plugins.entries()) {
      try {
        const path = findInPath(plugin.type, runtime.binDirs, `${list.source}: plugins[${i}].type`);
        await execPlugin(runtime, path, {
          command: 'GC',
          config: deriveGcConfig(list, plugin, args.validAttachments),
          label: labelOf(i, plugin),
        });
      } catch (error) {
        errors.push(error as Error);
      }
    }
  }
  if (errors.length > 0) throw combine(errors);
}

/**
 * Asks every plugin whether it can serve ADD (spec 1.1.0, "STATUS"): the
 * first failure is thrown with its code (50, 51...). A list older than 1.1.0
 * has no STATUS and counts as available.
 */
export async function statusNetworkList(
  runtime: CniRuntimeConfig,
  list: NetworkConfigList,
): Promise<void> {
  if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
  const paths = pluginPaths(runtime, list);
  for (const [i, plugin] of list.plugins.entries()) {
    await execPlugin(runtime, paths[i] ?? '', {
      command: 'STATUS',
      config: deriveStatusConfig(list, plugin),
      label: labelOf(i, plugin),
    });
  }
}
