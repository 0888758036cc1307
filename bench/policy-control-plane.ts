/**
 * The control plane of bench:policy (policy.ts): the workload's full apply, compiled for
 * node n1 by a new NodePolicyCompiler, rendered as one transaction and loaded into a
 * namespace with no table; then one policy replaced by a variant of itself (every policy
 * shape) and one new pod, each compiled by the last compiler object (its caches warm, as
 * in the agent), diffed with renderPolicyChange() and applied. Every transaction is
 * applied twice, the kernel put back in between: with the `nft -f -` command and with
 * the agent's NftRunner (libnftables in-process), so the two compare.
 */
import { NftRunner } from '../src/kernel/libnftables.js';
import { nftApplyAsync } from '../src/kernel/nft.js';
import {
  NodePolicyCompiler,
  type PolicyState,
  renderPolicyChange,
  renderPolicyRuleset,
} from '../src/policy/compile.js';
import type { PolicyInput } from '../src/policy/model.js';
import type { PolicyPod } from '../src/policy/types.js';
import { deleteTable, nodeName } from './policy-lab.js';
import { type WorkloadSize, policyAt, policyShapes } from './policy-workload.js';
import { msSince, now } from './services-lab.js';

function lineCount(script: string): number {
  return script === '' ? 0 : script.split('\n').length - 1;
}

/** The two ways a transaction reaches the kernel. */
export interface Applier {
  key: 'command' | 'runner';
  label: string;
  apply(script: string): Promise<void>;
}

/** Set when NftRunner could not load libnftables and used the command instead. */
let runnerFallback: string | undefined;
/** The agent's way: one libnftables context for the process, in the node's namespace. */
export const runner = new NftRunner((line) => {
  runnerFallback = line;
});

export const appliers: readonly Applier[] = [
  { key: 'command', label: 'nft -f -', apply: nftApplyAsync },
  { key: 'runner', label: 'NftRunner', apply: (script) => runner.apply(script) },
];

export type PerApplier = Record<Applier['key'], number>;

/** One measured change: compile and render once, then the transaction through each applier. */
export interface Sample {
  label: string;
  /** The policy shape (k % 6) for a policy update. */
  shape?: number;
  /** Lines of the nft transaction; 0 when nothing changed (nothing applied). */
  lines: number;
  /** Its size in bytes. */
  bytes: number;
  compile: number;
  render: number;
  apply: PerApplier;
}

/** Appliers in turn, the order swapped every other time so neither always goes first. */
function inTurn(i: number): readonly Applier[] {
  return i % 2 === 0 ? appliers : [...appliers].reverse();
}

/** A pod that is not in the workload, on n1, with labels some policies select. */
function newPod(j: number, size: WorkloadSize, template: PolicyPod): PolicyPod {
  const tiers = ['web', 'api', 'db', 'cache', 'worker'];
  const [a, b] = (template.ips[0] ?? '10.100.0.1').split('.');
  return {
    namespace: `ns-${(j * 13 + 5) % size.namespaces}`,
    name: `bench-new-${j}`,
    labels: { app: `app-${j % 4}`, tier: tiers[j % tiers.length] ?? 'web' },
    ips: [`${a ?? '10'}.${b ?? '100'}.200.${10 + j}`],
    node: nodeName,
    containerPorts: template.containerPorts,
  };
}

export interface ControlPlane {
  fullApply: Sample[];
  ruleset: { chains: number; sets: number; elements: number; lines: number; bytes: number };
  updates: Sample[];
  addPod: Sample[];
  /** The workload's whole ruleset, loaded at the end. */
  script: string;
  /** Set when NftRunner could not load libnftables and used the command instead. */
  runnerFallback: string | undefined;
}

/** The full applies, then one-policy updates and added pods on the last compiler. */
export async function controlPlane(
  input: PolicyInput,
  options: { rounds: number; size: WorkloadSize },
): Promise<ControlPlane> {
  const { size } = options;
  const fullApply: Sample[] = [];
  let compiler = new NodePolicyCompiler(nodeName);
  let applied: PolicyState | undefined;
  let script = '';
  for (let r = 0; r < options.rounds; r++) {
    deleteTable();
    // A new compiler each round, as an agent that starts: nothing cached.
    compiler = new NodePolicyCompiler(nodeName);
    let t = now();
    applied = compiler.compile(input);
    const compile = msSince(t);
    t = now();
    script = renderPolicyRuleset(applied);
    const render = msSince(t);
    const apply: PerApplier = { command: NaN, runner: NaN };
    for (const applier of inTurn(r)) {
      deleteTable();
      t = now();
      await applier.apply(script);
      apply[applier.key] = msSince(t);
    }
    fullApply.push({
      label: `round ${r + 1}`,
      lines: lineCount(script),
      bytes: script.length,
      compile,
      render,
      apply,
    });
    console.log(
      `  round ${r + 1}: compile ${compile.toFixed(0)} ms, render ${render.toFixed(0)} ms, ` +
        appliers.map((a) => `${a.label} ${apply[a.key].toFixed(0)} ms`).join(', '),
    );
  }
  if (!applied) throw new Error('No full apply ran');
  let elements = 0;
  for (const set of applied.sets.values()) elements += set.elements.size;
  const ruleset = {
    chains: applied.chains.size,
    sets: applied.sets.size,
    elements,
    lines: lineCount(script),
    bytes: script.length,
  };

  // Changes on the last round's compiler, its caches warm. Each change is applied by both
  // appliers (the kernel put back in between, untimed), then undone before the next.
  const measure = async (label: string, next: PolicyInput, i: number): Promise<Sample> => {
    const old = applied as PolicyState;
    let t = now();
    const state = compiler.compile(next);
    const compile = msSince(t);
    t = now();
    const change = renderPolicyChange(old, state);
    const render = msSince(t);
    const apply: PerApplier = { command: 0, runner: 0 };
    if (change !== '') {
      const back = renderPolicyChange(state, old);
      const order = inTurn(i);
      for (const [n, applier] of order.entries()) {
        t = now();
        await applier.apply(change);
        apply[applier.key] = msSince(t);
        if (n < order.length - 1) await applier.apply(back);
      }
    }
    // Back to the workload for the next change, through the compiler as the agent would.
    const base = compiler.compile(input);
    const undo = renderPolicyChange(state, base);
    if (undo !== '') await nftApplyAsync(undo);
    applied = base;
    return { label, lines: lineCount(change), bytes: change.length, compile, render, apply };
  };

  const updates: Sample[] = [];
  for (let j = 0; j < options.rounds; j++) {
    for (let shape = 0; shape < policyShapes; shape++) {
      // Spread over namespaces and selectors: k runs through the policy list.
      const k =
        shape +
        policyShapes * ((j * 53 + shape * 29 + 7) % Math.floor(size.policies / policyShapes));
      const policies = [...input.policies];
      policies[k] = policyAt(k, size, 1);
      const sample = await measure(`policy-${k} → variant`, { ...input, policies }, updates.length);
      updates.push({ ...sample, shape });
    }
  }

  const addPod: Sample[] = [];
  const template = input.pods.find((p) => p.node === nodeName) ?? input.pods[0];
  if (!template) throw new Error('The workload has no pods');
  for (let j = 0; j < options.rounds; j++) {
    const pod = newPod(j, size, template);
    const label = `add ${pod.namespace}/${pod.name} ${pod.labels.app ?? ''},${pod.labels.tier ?? ''}`;
    addPod.push(await measure(label, { ...input, pods: [...input.pods, pod] }, j));
  }
  return { fullApply, ruleset, updates, addPod, script, runnerFallback };
}
