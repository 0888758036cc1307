/**
 * Running plugin chains in tests with strata's own container-runtime code
 * (src/cni/runtime), and the observations the chain tests make: masquerade
 * elements, NAT rules, TCP reachability, processes stopped at a fault point.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CniRuntimeConfig } from '../../src/cni/runtime/invoke.js';
import { type Lab, inNetns, netnsPath } from './netns.js';
import { binDir, referenceDir, strataCni } from './plugin.js';

/** A runtime that finds strata's binaries first, then the reference plugins, and runs them in `node`. */
export function testRuntime(
  lab: Lab,
  node: string,
  options: { env?: Record<string, string>; binDirs?: string[] } = {},
): CniRuntimeConfig {
  return {
    binDirs: options.binDirs ?? [binDir, referenceDir],
    cacheDir: lab.dir('strata-cni-cache-'),
    pluginNetns: node,
    timeoutMs: 30_000,
    env: { ...process.env, ...options.env },
  };
}

/** Writes a configuration file into a CNI config directory, as an installer would. */
export function writeConfigFile(dir: string, file: string, body: unknown): string {
  const path = join(dir, file);
  writeFileSync(path, JSON.stringify(body, null, 2));
  return path;
}

/** The cached results libcni-style: file names under `<cacheDir>/results`. */
export function cachedResultFiles(runtime: CniRuntimeConfig): string[] {
  try {
    return readdirSync(join(runtime.cacheDir ?? '', 'results')).sort();
  } catch {
    return [];
  }
}

/** Reads an allocation file's owner: `containerID\r\nifname`, host-local's format. */
export function allocationOwner(dataDir: string, network: string, ip: string): string {
  return readFileSync(join(dataDir, network, ip), 'utf8');
}

export interface MasqueradeElement {
  set: string;
  /** The pod address (the first part of the element). */
  address: string;
  comment: string;
}

/** Every element of strata-cni's masquerade sets in a namespace, with its owner comment. */
export function masqueradeElements(netns: string): MasqueradeElement[] {
  const out = inNetns(netns, ['nft', '-j', 'list', 'table', 'inet', 'strata_cni']);
  if (out.status !== 0) return [];
  const json = JSON.parse(out.stdout) as { nftables: Record<string, unknown>[] };
  const elements: MasqueradeElement[] = [];
  for (const item of json.nftables) {
    const set = item.set as { name: string; elem?: unknown[] } | undefined;
    if (!set) continue;
    for (const e of set.elem ?? []) {
      const elem = (e as { elem?: { val?: unknown; comment?: string } }).elem;
      const val = elem?.val ?? e;
      const first = (val as { concat?: unknown[] }).concat?.[0] ?? val;
      if (typeof first === 'string') {
        elements.push({ set: set.name, address: first, comment: elem?.comment ?? '' });
      }
    }
  }
  return elements;
}

/** The nat table of a namespace as iptables-save prints it (portmap's rules live there). */
export function natRules(netns: string): string {
  const out = inNetns(netns, ['iptables-save', '-t', 'nat']);
  return out.status === 0 ? out.stdout : '';
}

/** Starts an ncat server per entry (each answers every connection with its reply) and waits until all listen. */
export async function serveTcpAll(
  lab: Lab,
  servers: readonly { netns: string; host: string; port: number; reply: string }[],
): Promise<void> {
  for (const s of servers) {
    const child = spawn(
      'ip',
      ['netns', 'exec', s.netns, 'ncat', '-lk', s.host, String(s.port), '-c', `echo ${s.reply}`],
      { stdio: 'ignore' },
    );
    lab.onCleanup(() => child.kill('SIGKILL'));
  }
  const deadline = Date.now() + 10_000;
  let waiting = [...servers];
  while (waiting.length > 0) {
    const listening = await Promise.all(
      waiting.map(
        async (s) =>
          (
            await run('ip', ['netns', 'exec', s.netns, 'ss', '-Hltn', `sport = :${s.port}`])
          ).stdout.trim() !== '',
      ),
    );
    waiting = waiting.filter((_, i) => !listening[i]);
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`servers did not start listening: ${waiting.map((s) => s.netns).join(' ')}`);
    }
    await sleep(50);
  }
}

/** Runs a command asynchronously; never throws, reports status and output. */
export function run(
  file: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: options.env ?? process.env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.on('error', () => undefined);
    child.on('error', (error) => {
      resolve({ status: null, stdout, stderr: error.message });
    });
    child.on('close', (status) => {
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Connects from `netns` to host:port with ncat and returns what the server sent (empty when refused). */
export async function tcpReply(netns: string, host: string, port: number): Promise<string> {
  const out = await run('ip', [
    'netns',
    'exec',
    netns,
    'ncat',
    '--recv-only',
    '-w',
    '3',
    host,
    String(port),
  ]);
  return out.status === 0 ? out.stdout.trim() : '';
}

/** The state letter of a process from /proc/<pid>/stat ('T' when stopped), or undefined when gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** Waits until the process is stopped (SIGSTOP); throws if it exits or takes too long. */
export async function waitUntilStopped(pid: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = processState(pid);
    if (state === 'T') return;
    if (state === undefined || state === 'Z')
      throw new Error(`process ${pid} ended before it stopped`);
    if (Date.now() > deadline) throw new Error(`process ${pid} did not stop (state ${state})`);
    await sleep(20);
  }
}

/** The pids of a process's children (every thread's), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8')
        .split(' ')
        .filter(Boolean)
        .map(Number),
    );
  } catch {
    return [];
  }
}

/** Waits until none of the processes runs any more (gone or a zombie). */
export async function waitUntilGone(pids: readonly number[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((pid) => !['Z', undefined].includes(processState(pid)))) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.join(' ')} did not end`);
    await sleep(20);
  }
}

/**
 * Starts strata-cni ADD without waiting for it, as a runtime would, inside
 * `node`: `ip netns exec` execs the plugin, so the child's pid is the plugin's.
 */
export function startStrataAdd(options: {
  node: string;
  pod: string;
  containerId: string;
  ifname: string;
  conf: unknown;
  env?: Record<string, string>;
}): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn('ip', ['netns', 'exec', options.node, strataCni], {
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: options.containerId,
      CNI_NETNS: netnsPath(options.pod),
      CNI_IFNAME: options.ifname,
      CNI_PATH: `${binDir}:${referenceDir}`,
      ...options.env,
    },
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (status) => {
      resolve(status);
    });
  });
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(JSON.stringify(options.conf));
  return { child, exited };
}

/**
 * Installs a recording test plugin under each of `types` in a new bin dir:
 * it appends `{type, command, config}` of every call to `<dir>/calls.jsonl`,
 * answers VERSION with 1.0.0 and 1.1.0, fails ADD when its config has
 * `"failAdd": true`, and otherwise returns its prevResult (or an empty result).
 */
export function installRecorder(
  lab: Lab,
  types: readonly string[],
): { dir: string; calls: () => RecordedCall[] } {
  const dir = lab.dir('strata-recorder-');
  const log = join(dir, 'calls.jsonl');
  const script = `#!${process.execPath}
const fs = require('node:fs');
const path = require('node:path');
const type = path.basename(process.argv[1]);
const command = process.env.CNI_COMMAND;
let config = {};
try { config = JSON.parse(fs.readFileSync(0, 'utf8')); } catch {}
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ type, command, config }) + '\\n');
if (command === 'VERSION') {
  process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] }));
} else if (command === 'ADD' && config.failAdd) {
  process.stdout.write(JSON.stringify({ cniVersion: config.cniVersion, code: 110, msg: type + ' refuses this ADD', details: 'failAdd is set' }));
  process.exitCode = 1;
} else if (command === 'ADD') {
  process.stdout.write(JSON.stringify(config.prevResult ?? { cniVersion: config.cniVersion }));
}
`;
  for (const type of types) {
    const file = join(dir, type);
    writeFileSync(file, script);
    chmodSync(file, 0o755);
  }
  // CommonJS: the bin dir has no package.json saying otherwise.
  writeFileSync(join(dir, 'package.json'), '{"type": "commonjs"}');
  return {
    dir,
    calls: () => {
      try {
        return readFileSync(log, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as RecordedCall);
      } catch {
        return [];
      }
    },
  };
}

export interface RecordedCall {
  type: string;
  command: string;
  config: Record<string, unknown>;
}
