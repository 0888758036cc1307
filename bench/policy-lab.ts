/**
 * Where bench:policy (policy.ts) measures: the node namespace, standing in for node n1
 * of the workload, in which the measuring process itself runs, with its policy table
 * and its bridge; the pods' namespaces wired to it; and the processes the run starts
 * in the pods, stopped by pid on every exit path.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { PodPolicy } from '../src/policy/model.js';
import { policyTable } from '../src/policy/compile.js';

/** The workload's node that the node namespace stands in for. */
export const nodeName = 'n1';

/** Runs a command to completion; its stdout, or an error with its stderr. */
export function sh(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Deletes the node's policy table, if there is one. */
export function deleteTable(): void {
  // Absent is fine: the first round and the "none" scenario start from no table.
  spawnSync('nft', ['delete', 'table', 'inet', policyTable]);
}

/** Child processes this process started; stopped by pid on every exit path. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

export function stopChildren(): void {
  for (const child of children) child.kill('SIGTERM');
}

export interface WiredPod {
  pod: PodPolicy;
  ip: string;
  netns: string;
}

/** cni0 in the node namespace with a gateway address, br_netfilter on, and a veth per pod. */
export function wireTopology(pods: PodPolicy[], podNamespace: (i: number) => string): WiredPod[] {
  const first = pods[0]?.pod.ips[0] ?? '';
  const [a, b] = first.split('.');
  const gateway = `${a ?? ''}.${b ?? ''}.255.254`;
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['link', 'add', 'cni0', 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${gateway}/16`, 'dev', 'cni0']);
  sh('ip', ['link', 'set', 'cni0', 'up']);
  // A new namespace starts with 1 here, but say so (docs/policy-enforcement.md, section 1).
  writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', '1');
  if (readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim() !== '1') {
    throw new Error('bridge-nf-call-iptables is not 1 in the node namespace');
  }
  return pods.map((pod, i) => {
    const netns = podNamespace(i);
    const ip = pod.pod.ips[0] ?? '';
    const veth = `veth${i}`;
    sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    sh('ip', ['link', 'set', veth, 'master', 'cni0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/16`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', gateway]);
    return { pod, ip, netns };
  });
}

/** Runs `args` in `netns` and resolves with its stdout; rejects on a non-zero exit. */
export function inPod(netns: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = track(spawn('ip', ['netns', 'exec', netns, ...args], { stdio: 'pipe' }));
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${args.join(' ')} in ${netns} exited ${code ?? 'by signal'}: ${err}`));
    });
  });
}

/** Starts a long-running server in `netns`; resolves once it printed `ready`. */
export function startServer(netns: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = track(spawn('ip', ['netns', 'exec', netns, ...args], { stdio: 'pipe' }));
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`${args.join(' ')} did not start: ${out}`));
    }, 10_000);
    const seen = (d: Buffer): void => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on('data', seen);
    child.stderr?.on('data', seen);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited ${code ?? 'by signal'}: ${out}`));
    });
  });
}
