// `strata up` and `strata down` end to end, as root, with the real components: a
// two-node cluster comes up, serves kubectl-style commands, runs the demo workload
// across its nodes, and goes without a trace (the host's root namespace as it was,
// no namespace, no process, no state directory). A failing up removes what it made.
// The tests that need the controller and the agent skip, saying why, until those
// modules are built; the API server alone is tested either way.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { ClusterRecord } from '../../src/cluster/state.js';
import { strataExecutable } from '../../src/cluster/components.js';
import { type CliRun, strataProcess } from '../support/cli.js';
import {
  clusterNamespacesLeft,
  clusterSkipReason,
  processesMentioning,
  rootNetworkSnapshot,
} from '../support/cluster.js';
import { inNetns, sh } from '../support/netns.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const skipCluster = clusterSkipReason();
const runTag = process.pid.toString(36);

/** A cluster name and state directory unique to this run, and `strata ... --name --state-dir`. */
function testCluster(suffix: string): {
  name: string;
  dir: string;
  stateDir: string;
  run(args: string[], options?: { input?: string; env?: NodeJS.ProcessEnv }): Promise<CliRun>;
} {
  const name = `t${runTag}${suffix}`;
  const dir = mkdtempSync(join(tmpdir(), `strata-e2e-${name}-`));
  const stateDir = join(dir, 'state');
  return {
    name,
    dir,
    stateDir,
    run: (args, options = {}) => {
      // The cluster flags go before `--`: what follows it is exec's command.
      const end = args.includes('--') ? args.indexOf('--') : args.length;
      const flags = ['--name', name, '--state-dir', stateDir];
      return strataProcess([...args.slice(0, end), ...flags, ...args.slice(end)], {
        ...options,
        cwd: repoRoot,
      });
    },
  };
}

/** Directories `up` moved logs to after a failure, named in its error. */
function keptLogs(run: CliRun): string[] {
  return [...run.stderr.matchAll(/the logs are kept in (\S+)/g)].map((m) => m[1] ?? '');
}

function assertNothingLeft(name: string, stateDir: string): void {
  assert.equal(existsSync(stateDir), false, `${stateDir} is removed`);
  assert.deepEqual(clusterNamespacesLeft(name), [], 'no namespace of the cluster is left');
  assert.deepEqual(processesMentioning(stateDir), [], 'no process of the cluster is left');
}

describe('strata up --nodes 2, then down', { skip: skipCluster }, () => {
  const cluster = testCluster('a');
  let rootBefore: Record<string, unknown>;
  let record: ClusterRecord;
  before(() => {
    rootBefore = rootNetworkSnapshot();
  });
  after(async () => {
    await cluster.run(['down']);
    rmSync(cluster.dir, { recursive: true, force: true });
  });

  it('starts the nodes and waits until both are Ready with a pod CIDR', async () => {
    const up = await cluster.run(['up', '--nodes', '2']);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const lines = up.stdout.split('\n');
    for (const expected of [
      `✓ underlay strata-${cluster.name}-underlay (172.31.0.0/24, bridge underlay0)`,
      `✓ node-1: namespace strata-${cluster.name}-node-1, eth0 172.31.0.11`,
      `✓ node-2: namespace strata-${cluster.name}-node-2, eth0 172.31.0.12`,
      `✓ api server ready (unix://${cluster.stateDir}/api.sock)`,
    ]) {
      assert.ok(lines.includes(expected), `${expected}\nin:\n${up.stdout}`);
    }
    assert.match(up.stdout, /\n✓ node-1 Ready \(pod CIDR 10\.244\.\d+\.0\/24\)\n/);
    assert.match(up.stdout, /\n✓ node-2 Ready \(pod CIDR 10\.244\.\d+\.0\/24\)\n/);

    record = JSON.parse(
      readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8'),
    ) as ClusterRecord;
    assert.deepEqual(
      record.nodes.map((n) => [n.name, n.netns, n.ip]),
      [
        ['node-1', `strata-${cluster.name}-node-1`, '172.31.0.11'],
        ['node-2', `strata-${cluster.name}-node-2`, '172.31.0.12'],
      ],
    );
    assert.deepEqual(Object.keys(record.processes).sort(), [
      'agent-node-1',
      'agent-node-2',
      'apiserver',
      'controller',
    ]);
    for (const file of ['apiserver', 'controller', 'agent-node-1', 'agent-node-2']) {
      assert.ok(existsSync(join(cluster.stateDir, 'logs', `${file}.log`)), `logs/${file}.log`);
    }
    // Whoever reaches the API socket can run commands as root in pods: owner only.
    assert.equal(statSync(join(cluster.stateDir, 'api.sock')).mode & 0o777, 0o600);
    assert.equal(statSync(cluster.stateDir).mode & 0o077, 0);
  });

  it("wires each node's namespace: eth0 on the underlay with its IP, lo up, forwarding on", () => {
    const netns = `strata-${cluster.name}-node-2`;
    const links = JSON.parse(sh('ip', ['-n', netns, '-j', 'addr', 'show'])) as {
      ifname: string;
      flags: string[];
      addr_info: { local: string; prefixlen: number }[];
    }[];
    const eth0 = links.find((l) => l.ifname === 'eth0');
    assert.ok(eth0, 'node-2 has eth0');
    assert.ok(eth0.addr_info.some((a) => a.local === '172.31.0.12' && a.prefixlen === 24));
    assert.ok(eth0.flags.includes('UP'));
    assert.ok(links.find((l) => l.ifname === 'lo')?.flags.includes('UP'), 'lo is up');
    const forwarding = inNetns(netns, ['cat', '/proc/sys/net/ipv4/ip_forward']);
    assert.equal(forwarding.stdout.trim(), '1');
    // Both nodes' veths hang off the underlay bridge.
    const ports = JSON.parse(
      sh('ip', [
        '-n',
        `strata-${cluster.name}-underlay`,
        '-j',
        'link',
        'show',
        'master',
        'underlay0',
      ]),
    ) as { ifname: string }[];
    assert.deepEqual(
      ports.map((p) => p.ifname),
      ['node-1', 'node-2'],
    );
  });

  it('refuses a second up, saying how to see the cluster and take it down', async () => {
    const again = await cluster.run(['up']);
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr,
      `error: Cluster "${cluster.name}" is already up (${cluster.stateDir}/cluster.json): see it with "strata status --name ${cluster.name} --state-dir ${cluster.stateDir}", take it down with "strata down --name ${cluster.name} --state-dir ${cluster.stateDir}"\n`,
    );
  });

  it('status: both nodes Ready, every process running, each mesh proxy too', async () => {
    const status = await cluster.run(['status']);
    assert.equal(status.code, 0, status.stdout);
    assert.match(status.stdout, new RegExp(`^Cluster "${cluster.name}": healthy\\n`));
    assert.match(
      status.stdout,
      /\nnode-1 +172\.31\.0\.11 +10\.244\.\d+\.0\/24 +Ready +running \(pid \d+\) +running \(pid \d+\)\n/,
    );
    assert.match(
      status.stdout,
      /\nnode-2 +172\.31\.0\.12 +10\.244\.\d+\.0\/24 +Ready +running \(pid \d+\) +running \(pid \d+\)\n/,
    );
    assert.match(status.stdout, /\ncontroller +running \(pid \d+\)\n/);
  });

  it('get nodes and describe node show what the agents registered', async () => {
    const get = await cluster.run(['get', 'nodes', '-o', 'wide']);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^NAME +STATUS +ROLES +AGE +VERSION +INTERNAL-IP/);
    assert.match(get.stdout, /\nnode-1 +Ready .*172\.31\.0\.11/);
    assert.match(get.stdout, /\nnode-2 +Ready .*172\.31\.0\.12/);
    const describeNode = await cluster.run(['describe', 'node', 'node-2']);
    assert.equal(describeNode.code, 0, describeNode.stderr);
    assert.match(describeNode.stdout, /^Name: +node-2\n/);
    assert.match(describeNode.stdout, /\n {2}InternalIP: +172\.31\.0\.12\n/);
    assert.match(describeNode.stdout, /\nPodCIDR: +10\.244\.\d+\.0\/24\n/);
  });

  it('rejects bad manifests with their path, applying none of the good ones', async () => {
    const dir = join(cluster.dir, 'manifests');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'a-good.yaml'),
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n',
    );
    writeFileSync(
      join(dir, 'b-bad.yaml'),
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: -1\n',
    );
    const apply = await cluster.run(['apply', '-f', dir]);
    assert.equal(apply.code, 1);
    assert.equal(apply.stdout, '');
    assert.match(
      apply.stderr,
      new RegExp(`^error: ${join(dir, 'b-bad.yaml')} document 1 \\(Deployment default/web\\): `),
    );
    assert.match(apply.stderr, /spec\.replicas: Invalid value: -1/);
    const get = await cluster.run(['get', 'namespace', 'good']);
    assert.equal(get.stderr, 'Error from server (NotFound): namespaces "good" not found\n');
  });

  it('runs the demo: a frontend on one node answers with backends on both', async () => {
    const manifest = readFileSync(join(repoRoot, 'examples', 'demo', 'demo.yaml'), 'utf8').replace(
      '/var/lib/strata/default/api.sock',
      join(cluster.stateDir, 'api.sock'),
    );
    const apply = await cluster.run(['apply', '-f', '-'], { input: manifest });
    assert.equal(apply.code, 0, apply.stderr);
    assert.equal(
      apply.stdout,
      'namespace/demo created\ndeployment.apps/backend created\nservice/backend created\ndeployment.apps/frontend created\nservice/frontend created\n',
    );

    type Pod = {
      metadata: { name: string };
      spec: { nodeName?: string };
      status: { phase?: string; podIP?: string };
    };
    let answer = '';
    let pods: Pod[] = [];
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const get = await cluster.run(['get', 'pods', '-n', 'demo', '-o', 'json']);
      pods = (JSON.parse(get.stdout) as { items: Pod[] }).items;
      const frontend = pods.find(
        (p) =>
          p.metadata.name.startsWith('frontend-') && p.spec.nodeName === 'node-2' && p.status.podIP,
      );
      if (frontend?.status.podIP) {
        // From node-1's namespace, across the underlay, to the frontend pod on node-2.
        const fetch = inNetns(
          `strata-${cluster.name}-node-1`,
          [
            process.execPath,
            '-e',
            `fetch('http://${frontend.status.podIP}:8080/').then(async (r) => { process.stdout.write(await r.text()); process.exitCode = r.ok ? 0 : 1; }, () => { process.exitCode = 1; })`,
          ],
          { timeoutMs: 10_000 },
        );
        // The frontend asks the backend Service by name, a new connection each time; the
        // Service spreads them over both backends (one per node, as the scheduler spreads them).
        if (
          fetch.status === 0 &&
          / {2}-> backend \S+ on node-1 /.test(fetch.stdout) &&
          / {2}-> backend \S+ on node-2 /.test(fetch.stdout)
        ) {
          answer = fetch.stdout;
          break;
        }
      }
      await sleep(500);
    }
    assert.match(
      answer,
      /^frontend frontend-\S+ on node-2 \(pod IP 10\.244\.\d+\.\d+\)\n/,
      JSON.stringify(pods),
    );
    assert.match(
      answer,
      /\n {2}backend is 10\.96\.\d+\.\d+; 4 requests, each on a new connection:\n/,
    );
    assert.match(answer, /\n {2}-> backend backend-\S+ on node-1 /);
    assert.match(answer, /\n {2}-> backend backend-\S+ on node-2 /);

    const wide = await cluster.run(['get', 'pods', '-n', 'demo', '-o', 'wide']);
    assert.equal(wide.stdout.match(/ Running /g)?.length, 4, wide.stdout);

    const frontend = pods.find((p) => p.metadata.name.startsWith('frontend-'));
    assert.ok(frontend);
    const logs = await cluster.run(['logs', '-n', 'demo', frontend.metadata.name]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /listening on :8080/);

    const exec = await cluster.run([
      'exec',
      '-n',
      'demo',
      frontend.metadata.name,
      '--',
      'sh',
      '-c',
      'ip -br addr show eth0; echo "$POD_NAME"; exit 3',
    ]);
    assert.equal(exec.code, 3, 'the exit code is passed through');
    assert.match(
      exec.stdout,
      new RegExp(`eth0@\\S+ +UP +${frontend.status.podIP?.replaceAll('.', '\\.') ?? ''}/24`),
    );
    assert.match(exec.stdout, new RegExp(`\\n${frontend.metadata.name}\\n$`));

    const describeSvc = await cluster.run(['describe', 'service', 'backend', '-n', 'demo']);
    assert.match(
      describeSvc.stdout,
      /\nEndpoints: +10\.244\.\d+\.\d+:8080,10\.244\.\d+\.\d+:8080\n/,
    );
  });

  it('down removes every process, namespace and file, and leaves the root namespace as it was', async () => {
    const down = await cluster.run(['down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /^✓ stopped \d+ processes\n✓ deleted \d+ network namespaces\n/);
    assert.match(down.stdout, new RegExp(`Cluster "${cluster.name}" is down\\.\\n$`));
    assertNothingLeft(cluster.name, cluster.stateDir);
    assert.deepEqual(rootNetworkSnapshot(), rootBefore);

    const again = await cluster.run(['down']);
    assert.equal(again.code, 0);
    assert.equal(again.stdout, `Cluster "${cluster.name}" is not up; nothing to remove.\n`);
  });
});

describe('a failing strata up', { skip: skipCluster }, () => {
  for (const step of ['after-underlay', 'after-apiserver', 'after-components']) {
    it(`removes everything it made when it fails ${step}`, async () => {
      const cluster = testCluster(step.slice(6, 9));
      const rootBefore = rootNetworkSnapshot();
      let up: CliRun | undefined;
      try {
        up = await cluster.run(['up', '--nodes', '2'], {
          env: { ...process.env, STRATA_TEST_HOOKS: '1', STRATA_UP_FAULT: `fail:${step}` },
        });
        assert.equal(up.code, 1);
        assert.match(
          up.stderr,
          new RegExp(`^error: Cluster "${cluster.name}" did not come up: injected failure ${step}`),
        );
        assert.match(up.stdout, /✗ start-up failed: removing everything made so far\n$/);
        assertNothingLeft(cluster.name, cluster.stateDir);
        assert.deepEqual(rootNetworkSnapshot(), rootBefore);
        if (step !== 'after-underlay') {
          const [logs] = keptLogs(up);
          assert.ok(logs !== undefined && existsSync(join(logs, 'apiserver.log')), up.stderr);
        }
      } finally {
        await cluster.run(['down']);
        for (const dir of up ? keptLogs(up) : []) rmSync(dir, { recursive: true, force: true });
        rmSync(cluster.dir, { recursive: true, force: true });
      }
    });
  }
});

describe('strata up with bad options', () => {
  it('refuses overlapping ranges before making anything', async () => {
    const cluster = testCluster('o');
    try {
      const up = await cluster.run([
        'up',
        '--cluster-cidr',
        '10.0.0.0/8',
        '--service-cidr',
        '10.96.0.0/12',
      ]);
      assert.equal(up.code, 1);
      assert.equal(
        up.stderr,
        'error: --cluster-cidr 10.0.0.0/8 and --service-cidr 10.96.0.0/12 overlap: the cluster, service and underlay ranges must not share addresses\n',
      );
      assert.equal(up.stdout, '');
      assert.equal(existsSync(cluster.stateDir), false);
    } finally {
      rmSync(cluster.dir, { recursive: true, force: true });
    }
  });
});

describe('strata apiserver, alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-e2e-apiserver-'));
  const stateDir = join(dir, 'state');
  let server: ChildProcess | undefined;
  const run = (args: string[], input?: string): Promise<CliRun> =>
    strataProcess([...args, '--state-dir', stateDir], { input });

  async function start(): Promise<ChildProcess> {
    const child = spawn(
      process.execPath,
      [strataExecutable, 'apiserver', '--state-dir', stateDir],
      {
        stdio: 'ignore',
      },
    );
    for (let i = 0; i < 100 && !existsSync(join(stateDir, 'api.sock')); i++) await sleep(50);
    return child;
  }

  async function stop(child: ChildProcess): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    return exited;
  }

  before(async () => {
    server = await start();
  });
  after(() => {
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the CLI from its FileStore, and keeps what it stored across a restart', async () => {
    const apply = await run(
      ['apply', '-f', '-'],
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: kept}\n',
    );
    assert.equal(apply.stdout, 'namespace/kept created\n');
    assert.ok(existsSync(join(stateDir, 'store')));
    assert.equal(await stop(server as ChildProcess), 0, 'SIGTERM stops it cleanly');
    server = await start();
    const get = await run(['get', 'namespaces', 'kept', '-o', 'name']);
    assert.equal(get.stdout, 'namespace/kept\n');
  });

  it('rejects bad manifests before sending any', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n',
    );
    const apply = await run(['apply', '-f', file]);
    assert.equal(apply.code, 1);
    assert.match(
      apply.stderr,
      new RegExp(
        `^error: ${file} document 2 \\(Pod default/p\\): spec\\.containers: Required value`,
      ),
    );
    const get = await run(['get', 'namespace', 'fine']);
    assert.equal(get.code, 1);
  });
});

describe('strata down', () => {
  // A directory that never held a cluster is not strata's: entries that happen to be called
  // logs/, store/ or nodes/ stay.
  it('touches nothing in a directory without a cluster, whatever its entries are called', () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-e2e-down-'));
    try {
      for (const sub of ['logs', 'store', 'nodes']) {
        mkdirSync(join(dir, sub));
        writeFileSync(join(dir, sub, 'keep.txt'), 'mine');
      }
      const down = spawnSync(
        process.execPath,
        [strataExecutable, 'down', '--name', `t${runTag}k`, '--state-dir', `${dir}/`],
        { encoding: 'utf8' },
      );
      assert.equal(down.status, 0, down.stderr);
      for (const sub of ['logs', 'store', 'nodes']) {
        assert.equal(readFileSync(join(dir, sub, 'keep.txt'), 'utf8'), 'mine');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('of a cluster that never came up says so, and succeeds', () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-e2e-down-'));
    try {
      const name = `t${runTag}n`;
      const down = spawnSync(
        process.execPath,
        [strataExecutable, 'down', '--name', name, '--state-dir', join(dir, 'never')],
        { encoding: 'utf8' },
      );
      assert.equal(down.status, 0, down.stderr);
      assert.equal(down.stdout, `Cluster "${name}" is not up; nothing to remove.\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
