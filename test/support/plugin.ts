/**
 * Runs CNI plugins the way a container runtime does: environment variables,
 * the network configuration on stdin, the result or error on stdout; always
 * inside a test's node namespace.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNetns, netnsPath } from './netns.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bin, built by `npm run build` (tests run from dist/test/support). */
export const binDir = join(here, '..', '..', 'bin');
export const strataCni = join(binDir, 'strata-cni');
export const strataIpam = join(binDir, 'strata-ipam');
export const referenceDir = '/usr/lib/cni';
/** CNI_PATH for tests: strata's binaries first, then the reference plugins. */
export const cniPath = `${binDir}:${referenceDir}`;

export interface PluginCall {
  /** The executable: strataCni, or a reference plugin's path. */
  plugin?: string;
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'VERSION' | 'GC';
  /** The namespace the plugin runs in (the test's node). */
  node: string;
  /** The pod's namespace name (made into /var/run/netns/<name>), or a raw CNI_NETNS path. */
  pod?: string;
  netnsPath?: string;
  containerId?: string;
  ifname?: string;
  conf: unknown;
  env?: Record<string, string>;
  /** Drop these variables from the environment. */
  unset?: string[];
}

export interface PluginOutcome {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is. */
  json: Record<string, unknown> | undefined;
}

export function callPlugin(call: PluginCall): PluginOutcome {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_PATH: cniPath,
  };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  const ns = call.netnsPath ?? (call.pod ? netnsPath(call.pod) : undefined);
  if (ns !== undefined) env.CNI_NETNS = ns;
  Object.assign(env, call.env ?? {});
  for (const key of call.unset ?? []) delete env[key];
  const input = typeof call.conf === 'string' ? call.conf : JSON.stringify(call.conf);
  const out = inNetns(call.node, [call.plugin ?? strataCni], { input, env });
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(out.stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { ...out, json };
}

/** Calls the plugin and throws with its output unless it succeeded. */
export function mustCall(call: PluginCall): PluginOutcome {
  const out = callPlugin(call);
  if (out.status !== 0) {
    throw new Error(`${call.command} failed (${out.status}): ${out.stdout} ${out.stderr}`);
  }
  return out;
}

/** A strata-cni network configuration with strata-ipam, for one test. */
export function bridgeConf(options: {
  name: string;
  bridge: string;
  dataDir: string;
  cniVersion?: string;
  subnets?: string[];
  extra?: Record<string, unknown>;
  ipamExtra?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    cniVersion: options.cniVersion ?? '1.0.0',
    name: options.name,
    type: 'strata-cni',
    bridge: options.bridge,
    isGateway: true,
    ipam: {
      type: 'strata-ipam',
      dataDir: options.dataDir,
      ranges: (options.subnets ?? ['10.99.0.0/24']).map((subnet) => [{ subnet }]),
      ...options.ipamExtra,
    },
    ...options.extra,
  };
}
