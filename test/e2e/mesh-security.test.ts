// The ambient mesh's security properties on a real two-node cluster
// (`strata up --nodes 2 --workload-cert-ttl 20s`), the cluster-level half of
// issue 6's list that the HBONE unit tests cover in one process:
//
// 1. Rotation: with 20 s certificates (rotated at half life), one TCP
//    connection client (node-1) → server (node-2) through the mesh exchanges
//    data until every certificate it was opened with has expired, across
//    rotations on both nodes (the CA's issuance log shows new serials at
//    ~10 s intervals), and keeps going after a new connection retires its
//    tunnel; the new connection opens a new tunnel, and node-2 presents the
//    newest serial on it.
// 2. Refusals: a forged HBONE client (strata's own HboneClient, from node-1's
//    namespace, straight to the server pod's address on 15008 as a node
//    proxy would) is let in with a proper certificate (the control), and
//    refused, without the server pod ever seeing a connection, with a leaf of
//    another CA, an expired leaf of the cluster's CA, a leaf of the cluster's
//    CA for another trust domain, or for another service account that claims
//    the client pod's address; node-2's agent log names each refusal (the
//    last also in its access log). And the client side refuses a server
//    that proves another identity than the one it expects. The same impostor
//    from a pod's own address, with no `forwarded` header, is refused too:
//    the address belongs to another identity.
// 3. The underlay: tcpdump on the bridge between the nodes sees the meshed
//    connection only as TLS 1.3 records on 15008, never its bytes; the same
//    capture sees a pod outside the mesh send its bytes in the clear.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import { formatSpiffeId, type SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { generateWorkloadKey } from '../../src/mesh/identity/workload.js';
import { type Pod, podResource } from '../support/agent-cluster.js';
import { clusterSkipReason } from '../support/cluster.js';
import type { CertificateJson, ForgerAttempt, ForgerResult } from '../support/hbone-forger.js';
import { LiveCluster, isRunning } from '../support/live-cluster.js';
import { uniqueName } from '../support/netns.js';
import { flowKey, reassemble, tcpSegments, tlsRecords } from '../support/pcap.js';

const meshNs = uniqueName('msec');
const plainNs = uniqueName('mplain');
const trustDomain = 'cluster.local';
/** The workload certificates' lifetime: rotation at ~10 s, expiry at 20 s. */
const ttlSeconds = 20;
const hbonePort = 15008;
const identity = (serviceAccount: string, namespace = meshNs, domain = trustDomain): SpiffeId => ({
  trustDomain: domain,
  namespace,
  serviceAccount,
});
const spiffe = (serviceAccount: string) => formatSpiffeId(identity(serviceAccount));
const forgerScript = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'support',
  'hbone-forger.js',
);

const tcpdumpMissing =
  spawnSync('tcpdump', ['--version']).error === undefined
    ? false
    : 'tcpdump is not installed (scripts/setup.sh installs it)';

/** A sleeping pod, or the server: 8080 answers each connection with the peer's address, 9000 echoes. */
function pod(namespace: string, name: string, node: string, serviceAccount: string): KubeObject {
  const sleeping = [{ name: 'main', image: 'ncat', command: ['sleep', 'infinity'] }];
  // -v: ncat logs "Connection from ..." for every connection it accepts (the container's log).
  const serving = [
    {
      name: 'conn',
      image: 'ncat',
      command: ['ncat', '-v', '-lk', '8080', '--sh-exec', 'echo $NCAT_REMOTE_ADDR'],
    },
    { name: 'echo', image: 'ncat', command: ['ncat', '-v', '-lk', '9000', '-e', '/bin/cat'] },
  ];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      serviceAccountName: serviceAccount,
      terminationGracePeriodSeconds: 1,
      containers: name === 'server' ? serving : sleeping,
    },
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Processes the test started that may outlive a failed assertion; `after` kills what is left. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function inNetns(
  netns: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn('ip', ['netns', 'exec', netns, ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: options.timeoutMs ?? 8000,
        killSignal: 'SIGKILL',
      }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      resolve({ code: code ?? 1, stdout, stderr });
    });
    // A command that reads no input may be gone before we write: that is no error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/** One certificate the CA's log says it issued. */
interface Issuance {
  /** When the controller logged it (ms). */
  at: number;
  spiffeId: string;
  node: string;
  /** Lower-case hex without leading zeros. */
  serial: string;
  notAfter: number;
}

const issuedLine =
  /^(\S+) ca: issued (\S+) to node "([^"]+)" \(serial ([0-9a-f]+), notAfter (\S+)\)$/;

function normalSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+/, '');
}

/** A leaf over a fresh key, signed by `ca` for `id`, as JSON for the forger. */
async function leaf(
  ca: CertificateAuthority,
  id: SpiffeId,
  ttl?: number,
): Promise<CertificateJson> {
  const key = await generateWorkloadKey();
  const signed = await ca.sign(
    await key.createCsr(id),
    id,
    ttl === undefined ? {} : { ttlSeconds: ttl },
  );
  return {
    ...signed,
    notBefore: signed.notBefore.toISOString(),
    notAfter: signed.notAfter.toISOString(),
    privateKeyPem: key.privateKeyPem,
  };
}

/**
 * tcpdump in `netns` writing pcap to its stdout, until stop(). Immediate
 * mode: otherwise packets wait in the kernel's ring for a block to fill or
 * time out, and SIGINT loses them.
 */
function startCapture(netns: string, device: string, filter: string) {
  const args = ['-i', device, '-n', '--immediate-mode', '-U', '-s', '0', '-w', '-', filter];
  const child = track(
    spawn('ip', ['netns', 'exec', netns, 'tcpdump', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => {
      resolve();
    });
  });
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('listening on')) resolve();
    });
    void exited.then(() => {
      reject(new Error(`tcpdump exited: ${stderr}`));
    });
  });
  listening.catch(() => undefined);
  return {
    listening,
    /** Stops the capture (SIGINT flushes it); resolves to the pcap file. */
    async stop(): Promise<Buffer> {
      child.kill('SIGINT');
      await exited;
      return Buffer.concat(chunks);
    },
    kill(): void {
      child.kill('SIGKILL');
    },
  };
}

/**
 * One TCP connection from `netns` to an echo server, held open by ncat: each
 * exchange sends a line and waits for it to come back; close() ends our side
 * and resolves to ncat's exit code.
 */
function echoConnection(netns: string, host: string, port: number) {
  const child = track(
    spawn('ip', ['netns', 'exec', netns, 'ncat', host, String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let received = '';
  let sent = '';
  let count = 0;
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  return {
    get sent(): string {
      return sent;
    },
    get received(): string {
      return received;
    },
    async exchange(line: string): Promise<void> {
      count += 1;
      sent += `${line}\n`;
      child.stdin?.write(`${line}\n`);
      const deadline = Date.now() + 4000;
      while (received.length < sent.length) {
        if (child.exitCode !== null || child.signalCode !== null) {
          const how = String(child.exitCode ?? child.signalCode);
          assert.fail(`the connection broke after ${count - 1} exchanges (ncat exited ${how})`);
        }
        if (Date.now() > deadline) assert.fail(`no echo of exchange ${count} within 4 s`);
        await sleep(20);
      }
      assert.equal(received, sent, 'every byte came back once, in order');
    },
    close(): Promise<number | null> {
      child.stdin?.end();
      return exited;
    },
    kill(): void {
      child.kill('SIGKILL');
    },
  };
}

describe('mesh security on two nodes', { skip: clusterSkipReason() }, () => {
  let live: LiveCluster | undefined;
  let otherCaDir: string | undefined;
  const netns: Record<string, string> = {};
  const ip: Record<string, string> = {};
  let serverUid = '';
  const cluster = (): LiveCluster => {
    if (!live) throw new Error('The cluster is not up');
    return live;
  };
  const logPath = (component: string) => join(cluster().stateDir, 'logs', `${component}.log`);
  const readText = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  /** The part of a log written since `offset` (a size taken earlier). */
  const logSince = (component: string, offset: number) =>
    readFileSync(logPath(component)).subarray(offset).toString('utf8');
  const logSize = (component: string) =>
    existsSync(logPath(component)) ? statSync(logPath(component)).size : 0;
  const issuances = (spiffeId: string, node: string): Issuance[] =>
    readText(logPath('controller'))
      .split('\n')
      .map((line) => issuedLine.exec(line))
      .filter((match) => match !== null)
      .map(([, at = '', id = '', on = '', serial = '', notAfter = '']) => ({
        at: Date.parse(at),
        spiffeId: id,
        node: on,
        serial: normalSerial(serial),
        notAfter: Date.parse(notAfter),
      }))
      .filter((issued) => issued.spiffeId === spiffeId && issued.node === node);
  const accessLines = (node: string): Record<string, unknown>[] =>
    readText(join(cluster().nodeDir(node), 'mesh-access.log'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  /** Connections the server pod accepted on 8080, as ncat -v logs them (the line with the port). */
  const serverConnections = (): number =>
    readText(join(cluster().nodeDir('node-2'), 'pods', serverUid, 'conn.log'))
      .split('\n')
      .filter((line) => /^Ncat: Connection from \S+:\d+\.$/.test(line)).length;
  /** What server answers `from` on 8080 (the address it saw), '' when refused. */
  const ask = async (from: string): Promise<string> => {
    const run = await inNetns(netns[from] ?? '', [
      'ncat', '--recv-only', '-w', '2', '-i', '3', ip.server ?? '', '8080',
    ]); // prettier-ignore
    return run.stdout.trim();
  };
  /** Established TCP connections from node-1 to the server pod's HBONE port (local ends). */
  const tunnelsFromNode1 = async (): Promise<Set<string>> => {
    const run = await inNetns(cluster().nodeNetns('node-1'), [
      'ss', '-Htn', 'state', 'established', 'dst', `${ip.server ?? ''}:${hbonePort}`,
    ]); // prettier-ignore
    return new Set([...run.stdout.matchAll(/(\S+:\d+)\s+\S+:15008\b/g)].map((m) => m[1] ?? ''));
  };
  /** Runs the forger in node-1's namespace, or in `from` (a pod's). */
  const forge = async (attempts: ForgerAttempt[], from?: string): Promise<ForgerResult[]> => {
    const where = from ?? cluster().nodeNetns('node-1');
    const run = await inNetns(where, [process.execPath, forgerScript], {
      input: JSON.stringify({ attempts }),
      timeoutMs: 30_000,
    });
    assert.equal(run.code, 0, `the forger failed:\n${run.stderr}`);
    return run.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as ForgerResult);
  };
  let realCa: CertificateAuthority | undefined;
  const ca = (): CertificateAuthority => {
    if (!realCa) throw new Error('The cluster CA is not open');
    return realCa;
  };
  /** An HBONE attempt from node-1 to server:8080 through node-2's 15008, as the client pod. */
  const attempt = (
    name: string,
    certificate: CertificateJson,
    extra: Partial<ForgerAttempt> = {},
  ): ForgerAttempt => ({
    name,
    kind: 'hbone',
    certificate,
    trustBundlePem: ca().trustBundlePem(),
    peer: { address: ip.server ?? '', port: hbonePort },
    destination: { address: ip.server ?? '', port: 8080 },
    expectedIdentity: identity('server'),
    sourceAddress: ip.client ?? '',
    ...extra,
  });
  /** The serial (normalized) node-2 presents on a new connection to the server pod. */
  const presentedSerial = async (): Promise<string> => {
    const [probe] = await forge([
      attempt('probe', await leaf(ca(), identity('client')), { kind: 'server-certificate' }),
    ]);
    assert.equal(probe?.outcome, 'connected', JSON.stringify(probe));
    assert.match(probe.serverSan ?? '', new RegExp(`URI:${spiffe('server')}$`));
    return normalSerial(probe.serverSerial ?? '');
  };

  /**
   * Runs one forged client and checks it was refused as `expect` says, that
   * the server pod saw no connection, and that node-2's agent log names the
   * refusal (when `node2Log` is given).
   */
  const refusedWithoutReachingServer = async (
    forged: ForgerAttempt,
    expect: { reason: string; status?: number; message?: RegExp; node2Log?: RegExp },
    from?: string,
  ): Promise<ForgerResult> => {
    const connections = serverConnections();
    const logFrom = logSize('agent-node-2');
    const [result] = await forge([forged], from);
    assert.ok(result);
    assert.equal(result.outcome, 'refused', `${forged.name} got in: ${JSON.stringify(result)}`);
    assert.equal(result.reason, expect.reason, JSON.stringify(result));
    if (expect.status !== undefined) assert.equal(result.status, expect.status);
    if (expect.message) assert.match(result.message ?? '', expect.message);
    const node2Log = expect.node2Log;
    if (node2Log) {
      await cluster().waitFor(`node-2's agent log naming the refusal of ${forged.name}`, () =>
        logSince('agent-node-2', logFrom)
          .split('\n')
          .find((line) => node2Log.test(line)),
      );
    } else {
      await sleep(300);
    }
    assert.equal(
      serverConnections(),
      connections,
      `${forged.name}: the server pod saw no connection`,
    );
    return result;
  };

  before(async () => {
    live = LiveCluster.create();
    const up = await live.run([
      'up', '--nodes', '2', '--no-dns', '--workload-cert-ttl', `${ttlSeconds}s`,
    ]); // prettier-ignore
    if (up.code !== 0) throw new Error(`strata up failed (${up.code}):\n${up.stdout}${up.stderr}`);
    realCa = await CertificateAuthority.open({ dir: join(live.stateDir, 'ca'), trustDomain });
    await live.client.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: meshNs, labels: { 'istio.io/dataplane-mode': 'ambient' } },
    });
    await live.client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: plainNs } });
    const pods = [
      pod(meshNs, 'client', 'node-1', 'client'),
      pod(meshNs, 'tapped', 'node-1', 'tapped'),
      pod(meshNs, 'server', 'node-2', 'server'),
      pod(plainNs, 'outsider', 'node-1', 'default'),
    ];
    for (const p of pods) await live.client.create(p);
    for (const p of pods) {
      const name = p.metadata.name ?? '';
      const running = await live.waitFor(`${name} running`, async () => {
        const got = await cluster().client.get<Pod>(podResource, name, {
          namespace: p.metadata.namespace ?? '',
        });
        return isRunning(got) && got.status?.podIP ? got : undefined;
      });
      netns[name] = live.podNetns(running);
      ip[name] = running.status?.podIP ?? '';
      if (name === 'server') serverUid = running.metadata.uid ?? '';
    }
    const enrolled = async (node: string): Promise<string> => {
      const set = ['list', 'set', 'inet', 'strata_mesh', 'enrolled_v4'];
      return (await inNetns(cluster().nodeNetns(node), ['nft', ...set])).stdout;
    };
    await live.waitFor('the capture sets', async () => {
      const [one, two] = await Promise.all([enrolled('node-1'), enrolled('node-2')]);
      const ready =
        one.includes(ip.client ?? '?') &&
        one.includes(ip.tapped ?? '?') &&
        two.includes(ip.server ?? '?');
      return ready ? true : undefined;
    });
    await live.waitFor('the server listening on 8080 and 9000', async () => {
      const run = await inNetns(netns.server ?? '', ['ss', '-Hltn']);
      return /:8080\b/.test(run.stdout) && /:9000\b/.test(run.stdout) ? true : undefined;
    });
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    if (otherCaDir !== undefined) rmSync(otherCaDir, { recursive: true, force: true });
    if (live) assert.deepEqual(await live.down(), [], 'nothing of the cluster is left');
  });

  it('keeps a connection across certificate rotations and their expiry', async () => {
    const serverId = spiffe('server');
    const clientId = spiffe('client');
    const before = await presentedSerial();
    const token = randomBytes(4).toString('hex');
    const long = echoConnection(netns.client ?? '', ip.server ?? '', 9000);
    let count = 0;
    const exchange = () => long.exchange(`ping ${++count} ${token}`);
    try {
      await exchange();
      // Every certificate this connection's tunnel was made with was issued before now.
      const opened = Date.now();
      while (Date.now() < opened + (ttlSeconds + 1) * 1000) {
        await exchange();
        await sleep(250);
      }
      // All of them have expired: a new connection needs a rotated certificate at both ends.
      const tunnelsBefore = await tunnelsFromNode1();
      assert.equal(await ask('client'), ip.client, 'a new connection after the rotations works');
      const tunnelsAfter = await tunnelsFromNode1();
      const fresh = [...tunnelsAfter].filter((local) => !tunnelsBefore.has(local));
      assert.equal(
        fresh.length,
        1,
        `one new tunnel for it: before ${[...tunnelsBefore].join(', ')}, after ${[...tunnelsAfter].join(', ')}`,
      );
      const known = issuances(serverId, 'node-2').length;
      const now = await presentedSerial();
      const serverIssued = issuances(serverId, 'node-2');
      assert.notEqual(now, before, 'node-2 presents another certificate than at the start');
      // The newest when the probe came (or one issued while it ran), issued after the start.
      const newest = serverIssued.slice(known - 1).find((i) => i.serial === now);
      assert.ok(
        newest,
        `node-2 presents the CA's newest certificate: ${JSON.stringify(serverIssued)}`,
      );
      assert.ok(newest.at > opened, 'a certificate issued while the connection ran');
      // The old tunnel took a GOAWAY when the new connection retired it: its stream carries on.
      for (let i = 0; i < 4; i++) await exchange();

      assert.equal(await long.close(), 0, 'the connection closed cleanly');
      assert.equal(long.received, long.sent);

      // The certificates: 20 s lives, a new one at about half life, on both nodes, while it ran.
      const clientIssued = issuances(clientId, 'node-1');
      for (const [who, issued] of [
        ['server on node-2', serverIssued],
        ['client on node-1', clientIssued],
      ] as const) {
        const during = issued.filter((i) => i.at > opened && i.at < Date.now());
        assert.ok(
          during.length >= 1,
          `${who} was rotated while the connection ran: ${JSON.stringify(issued)}`,
        );
        for (const i of issued) {
          const life = (i.notAfter - i.at) / 1000;
          assert.ok(
            Math.abs(life - ttlSeconds) < 2,
            `${who}: a ${ttlSeconds} s certificate (${life} s)`,
          );
        }
        for (const [k, i] of issued.entries()) {
          if (k === 0) continue;
          const gap = (i.at - (issued[k - 1]?.at ?? 0)) / 1000;
          // Half life, up to 5 % of the life earlier; notAfter has whole seconds (up to
          // 1 s less life, so 0.5 s earlier), and a loaded machine may be late.
          assert.ok(
            gap >= ttlSeconds * 0.45 - 1 && gap <= ttlSeconds * 0.5 + 3,
            `${who}: renewed ${gap} s after the previous certificate, not at half life`,
          );
        }
      }
      assert.match(
        readText(logPath('agent-node-1')),
        new RegExp(`certificates: rotated ${clientId} `),
      );
      assert.match(
        readText(logPath('agent-node-2')),
        new RegExp(`certificates: rotated ${serverId} `),
      );

      // node-2's access log: one inbound connection over mTLS, as long as the test, no error.
      const line = await cluster().waitFor('the access-log line of the long connection', () =>
        accessLines('node-2').find(
          (l) =>
            l.direction === 'inbound' &&
            l['src.identity'] === clientId &&
            // The workload's port: dst.hbone_addr, or dst.addr where the tunnel port is not logged.
            (l['dst.hbone_addr'] === `${ip.server}:9000` || l['dst.addr'] === `${ip.server}:9000`),
        ),
      );
      assert.equal(line.error, undefined, JSON.stringify(line));
      assert.equal(line.bytes_recv, Buffer.byteLength(long.sent));
      assert.ok(
        Number.parseInt(String(line.duration), 10) >= ttlSeconds * 1000,
        String(line.duration),
      );
    } finally {
      long.kill();
    }
  });

  it('lets in a forged client that holds a proper certificate (the control)', async () => {
    const connections = serverConnections();
    const [result] = await forge([attempt('proper', await leaf(ca(), identity('client')))]);
    assert.equal(result?.outcome, 'connected', JSON.stringify(result));
    assert.equal(result.answer?.trim(), ip.client, 'the server sees the client pod address');
    await cluster().waitFor('the server logging the connection', () =>
      serverConnections() === connections + 1 ? true : undefined,
    );
  });

  it('refuses a leaf from another CA of the same trust domain', async () => {
    otherCaDir = mkdtempSync(join(tmpdir(), 'strata-other-ca-'));
    const other = await CertificateAuthority.open({ dir: otherCaDir, trustDomain });
    const result = await refusedWithoutReachingServer(
      attempt('another CA', await leaf(other, identity('client'))),
      {
        reason: 'tls',
        // The refusal names the forger's address (node-1's), though TLS tore its socket down.
        node2Log:
          /inbound-hbone \d+\.\d+\.\d+\.\d+:\d+ -> .*error: tls: The client certificate did not verify/,
      },
    );
    assert.match(result.message ?? '', /did not accept our certificate|refused our certificate/);
  });

  it('refuses an expired leaf of the cluster CA', async () => {
    const expired = await leaf(ca(), identity('client'), 1);
    await sleep(Date.parse(expired.notAfter) - Date.now() + 1100);
    await refusedWithoutReachingServer(attempt('expired', expired), {
      reason: 'tls',
      node2Log:
        /inbound-hbone \d+\.\d+\.\d+\.\d+:\d+ -> .*error: tls: The client certificate did not verify: CERT_HAS_EXPIRED/,
    });
  });

  it('refuses a leaf of the cluster CA for another trust domain', async () => {
    const elsewhere = await CertificateAuthority.open({
      dir: join(cluster().stateDir, 'ca'),
      trustDomain: 'elsewhere.example',
    });
    const foreign = identity('client', meshNs, 'elsewhere.example');
    await refusedWithoutReachingServer(
      attempt('another trust domain', await leaf(elsewhere, foreign)),
      {
        reason: 'tls',
        node2Log: new RegExp(
          `inbound-hbone \\d+\\.\\d+\\.\\d+\\.\\d+:\\d+ -> .*error: peer-identity: .*${formatSpiffeId(foreign)}, outside trust domain "${trustDomain}"`,
        ),
      },
    );
  });

  it("refuses another service account's leaf claiming the client pod's address", async () => {
    const accessBefore = accessLines('node-2').length;
    const impostor = spiffe('impostor');
    await refusedWithoutReachingServer(
      attempt('impostor', await leaf(ca(), identity('impostor'))),
      {
        reason: 'refused',
        status: 401,
        node2Log: new RegExp(
          `inbound-hbone .*deny: source address ${ip.client} belongs to ${spiffe('client')}, not ${impostor}`,
        ),
      },
    );
    const line = await cluster().waitFor('the access-log line of the refusal', () =>
      accessLines('node-2')
        .slice(accessBefore)
        .find((l) => l['src.identity'] === impostor),
    );
    assert.match(String(line.error), /belongs to/);
    assert.equal(line.level, 'error');
  });

  it("refuses another service account's leaf from a pod's own address, without forwarded", async () => {
    // The outsider is not enrolled: node-1 does not capture it, node-2 takes its 15008.
    await refusedWithoutReachingServer(
      attempt('impostor from the outsider pod', await leaf(ca(), identity('impostor')), {
        sourceAddress: undefined,
      }),
      {
        reason: 'refused',
        status: 401,
        node2Log: new RegExp(
          `inbound-hbone .*deny: source address ${ip.outsider} belongs to ${formatSpiffeId(identity('default', plainNs))}, not ${spiffe('impostor')}`,
        ),
      },
      netns.outsider,
    );
  });

  it('refuses, on the client side, a server that proves another identity than expected', async () => {
    await refusedWithoutReachingServer(
      attempt('wrong server identity', await leaf(ca(), identity('client')), {
        expectedIdentity: identity('not-the-server'),
      }),
      {
        reason: 'peer-identity',
        message: new RegExp(`proved ${spiffe('server')}, expected ${spiffe('not-the-server')}`),
      },
    );
  });

  it(
    'shows the underlay only TLS records for meshed traffic, and plaintext without the mesh',
    { skip: tcpdumpMissing },
    async () => {
      const marker = `strata-mesh-marker-${randomBytes(12).toString('hex')}`;
      const control = `strata-plain-marker-${randomBytes(12).toString('hex')}`;
      const { netns: underlay, bridge } = cluster().record().underlay;
      const capture = startCapture(underlay, bridge, `tcp and host ${ip.server ?? ''}`);
      let pcap: Buffer;
      try {
        await capture.listening;
        // Through the mesh: tapped (a fresh identity, so a fresh tunnel) → server's echo;
        // then the control, outside the mesh, under the same capture.
        for (const [from, text] of [
          ['tapped', marker],
          ['outsider', control],
        ] as const) {
          const connection = echoConnection(netns[from] ?? '', ip.server ?? '', 9000);
          try {
            await connection.exchange(text);
            assert.equal(await connection.close(), 0, `${from}'s connection closed cleanly`);
          } finally {
            connection.kill();
          }
        }
        await sleep(200);
        pcap = await capture.stop();
      } finally {
        capture.kill();
      }
      const segments = tcpSegments(pcap);
      const streams = [...new Set(segments.map(flowKey))].map((key) => ({
        key,
        bytes: reassemble(segments, key),
      }));
      // The control: the plain connection's bytes are on the wire, and the reader finds them.
      const plainFlow = streams.find(
        (s) => s.key.startsWith(`${ip.outsider}:`) && s.key.endsWith(`>${ip.server}:9000`),
      );
      assert.ok(
        plainFlow?.bytes?.includes(control),
        `the plain connection's bytes are on the underlay: ${streams.map((s) => s.key).join(' ')}`,
      );
      assert.ok(pcap.includes(control));

      assert.ok(!pcap.includes(marker), 'the meshed bytes never cross the underlay in the clear');
      for (const s of streams)
        assert.ok(!s.bytes?.includes(marker), `${s.key} carries no meshed plaintext`);
      assert.ok(
        !segments.some((s) => s.dstPort === 9000 && s.src !== ip.outsider),
        'no meshed packet to port 9000',
      );
      const tunnels = segments.filter(
        (s) => s.syn && s.dst === ip.server && s.dstPort === hbonePort,
      );
      assert.equal(
        tunnels.length,
        1,
        `one new tunnel to ${ip.server}:${hbonePort} (the tapped pod's)`,
      );
      const [tunnel] = tunnels;
      assert.ok(tunnel);
      const out = flowKey(tunnel);
      const [src, dst] = out.split('>');
      for (const [key, hello] of [
        [out, 'ClientHello'],
        [`${dst}>${src}`, 'ServerHello'],
      ] as const) {
        const bytes = reassemble(segments, key);
        assert.ok(bytes && bytes.length > 0, `${key} carried bytes`);
        const { records, rest } = tlsRecords(bytes);
        assert.equal(rest, 0, `${key} is TLS records from its first byte to its last`);
        assert.equal(records[0]?.type, 22, `${key} opens with a handshake record (${hello})`);
        // TLS 1.3 (RFC 8446 5.1): after the hello, application_data records of version 0x0303
        // (and one legacy change_cipher_spec in middlebox compatibility mode).
        const later = records.slice(1);
        assert.ok(
          later.every((r) => (r.type === 23 || r.type === 20) && r.version === 0x0303),
          JSON.stringify(later),
        );
        const data = later.filter((r) => r.type === 23);
        assert.ok(data.length >= 2, `${key}: application data records`);
        assert.ok(
          data.reduce((n, r) => n + r.length, 0) > marker.length,
          `${key}: the marker went as ciphertext`,
        );
      }
    },
  );
});
