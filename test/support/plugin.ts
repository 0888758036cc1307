/**
 * Runs CNI plugins the way a container runtime does: environment variables,
 * the network configuration on stdin, the result or error on stdout; always
 * inside a test's node namespace.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { isIP } from 'node:net';
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
  for (const key of call.unset ?? []) Reflect.deleteProperty(env, key);
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

/** The address files host-local's layout keeps in `<dataDir>/<network>/`: one per allocated IP. */
export function allocationFiles(dataDir: string, network: string): string[] {
  let names: string[];
  try {
    names = readdirSync(join(dataDir, network));
  } catch {
    return [];
  }
  return names.filter((n) => isIP(n) !== 0).sort();
}

/**
 * Asserts a CNI error (CNI spec 1.1.0, "Error"): non-zero exit, and on
 * stdout an object with cniVersion, the expected code and a message
 * matching `msg`. Returns the message.
 */
export function assertCniError(
  out: PluginOutcome,
  code: number,
  msg: RegExp,
  cniVersion?: string,
): string {
  const context = `exit ${out.status}, stdout ${out.stdout}, stderr ${out.stderr}`;
  assert.notEqual(out.status, 0, `expected failure: ${context}`);
  assert.ok(out.json, `stdout is not a JSON error object: ${context}`);
  assert.equal(typeof out.json.cniVersion, 'string', context);
  if (cniVersion !== undefined) assert.equal(out.json.cniVersion, cniVersion, context);
  assert.equal(out.json.code, code, context);
  assert.equal(typeof out.json.msg, 'string', context);
  const text = out.json.msg as string;
  assert.match(text, msg, context);
  return text;
}
