/**
 * What the HBONE tunnel costs on loopback, without a cluster: the two node
 * proxies of bench:mesh as two processes of their own (the outbound one: a
 * TCP listener relaying each connection into an HboneClient tunnel, as
 * src/mesh/proxy/outbound.ts; the inbound one: an HboneServer dialing the
 * destination, as inbound.ts), an HTTP server (mesh-server.js) and
 * `iperf3 -s` behind them, measured straight and through the tunnel in the
 * same run, alternating, medians over rounds:
 *   - latency of small HTTP requests at a fixed rate over keep-alive
 *     connections (mesh-client.js, open loop), and each proxy's CPU per
 *     1,000 req/s and RSS;
 *   - iperf3 upload through the tunnel as a share of straight.
 *
 *   node dist/bench/hbone-loopback.js [--rounds N] [--seconds S] [--rate R]
 *     [--connections C] [--iperf-seconds S] [--impl <dir>[,<dir>...]]
 *     [--no-latency] [--no-iperf] [--reverse]
 *
 * `--impl` names compiled trees (each holding src/mesh/hbone/*.js; default the
 * tree this file was compiled into): each is measured as its own "tunnel"
 * mode in the same rounds, so two builds of the HBONE code compare A/B under
 * the same machine noise. A proxy process is started per tree.
 *
 * Prints a table and one JSON line on stdout; progress on stderr.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const defaultImpl = resolve(here, '..');

interface Certs {
  trustBundlePem: string;
  client: SerializedCert;
  server: SerializedCert;
}

type SerializedCert = Record<string, unknown> & { notBefore: string; notAfter: string };

type ProxyMessage =
  | { type: 'listening'; port: number }
  | { type: 'usage'; cpuUs: number; userUs: number; rssMb: number };

// ---------------------------------------------------------------- children

function revive(cert: SerializedCert): unknown {
  return { ...cert, notBefore: new Date(cert.notBefore), notAfter: new Date(cert.notAfter) };
}

function answerUsage(): void {
  process.on('message', (message: unknown) => {
    if (message === 'usage') {
      const usage = process.cpuUsage();
      const reply: ProxyMessage = {
        type: 'usage',
        cpuUs: usage.user + usage.system,
        userUs: usage.user,
        rssMb: process.memoryUsage.rss() / 1e6,
      };
      process.send?.(reply);
    } else if (message === 'exit') {
      process.exit(0);
    }
  });
}

/** The inbound proxy: an HBONE server whose handler dials the destination (plain socket, as a transparent one). */
async function runInbound(impl: string, certs: Certs): Promise<void> {
  const { HboneServer } = (await import(
    pathToFileURL(join(impl, 'src/mesh/hbone/server.js')).href
  )) as typeof import('../src/mesh/hbone/server.js');
  const server = new HboneServer({
    address: '127.0.0.1',
    port: 0,
    trustDomain: 'cluster.local',
    trustBundlePem: certs.trustBundlePem,
    certificateFor: () => ({
      certificate: revive(
        certs.server,
      ) as import('../src/mesh/identity/workload.js').WorkloadCertificate,
    }),
    handler: (request) =>
      new Promise((done) => {
        const upstream: Socket = connect({
          host: request.destination.address,
          port: request.destination.port,
          allowHalfOpen: true,
        });
        upstream.once('connect', () => {
          done(upstream);
        });
        upstream.once('error', (error) => {
          done({ refuse: 503, reason: error.message });
        });
      }),
  });
  // As the node proxy does (src/mesh/proxy/proxy.ts): the HBONE server's own
  // listener stays unused, and sockets accepted by another listener (there a
  // transparent one, with Node's defaults: Nagle on) are handed to it.
  await server.listen();
  const inner = (server as unknown as { listener: Server }).listener;
  const outer = createServer((socket) => {
    inner.emit('connection', socket);
  });
  const port = await listenLoopback(outer);
  answerUsage();
  process.send?.({ type: 'listening', port } satisfies ProxyMessage);
}

/** The outbound proxy: each accepted connection through a tunnel to `destination`, as outbound.ts does. */
async function runOutbound(
  impl: string,
  certs: Certs,
  peerPort: number,
  destinations: number[],
): Promise<void> {
  const { HboneClient } = (await import(
    pathToFileURL(join(impl, 'src/mesh/hbone/client.js')).href
  )) as typeof import('../src/mesh/hbone/client.js');
  const { relay } = (await import(
    pathToFileURL(join(impl, 'src/mesh/hbone/relay.js')).href
  )) as typeof import('../src/mesh/hbone/relay.js');
  const client = new HboneClient({ trustBundlePem: certs.trustBundlePem });
  const source = revive(
    certs.client,
  ) as import('../src/mesh/identity/workload.js').WorkloadCertificate;
  const ports: number[] = [];
  for (const port of destinations) {
    const server = createServer((socket) => {
      socket.allowHalfOpen = true;
      socket.pause();
      socket.on('error', () => undefined);
      client
        .connect({
          source,
          destination: { address: '127.0.0.1', port },
          peer: { address: '127.0.0.1', port: peerPort },
          expectedIdentity: {
            trustDomain: 'cluster.local',
            namespace: 'bench',
            serviceAccount: 'server',
          },
          sourceAddress: '127.0.0.1',
        })
        .then((tunnel) => {
          socket.resume();
          return relay(tunnel, socket);
        })
        .catch(() => socket.resetAndDestroy());
    });
    ports.push(await listenLoopback(server));
  }
  answerUsage();
  for (const port of ports) process.send?.({ type: 'listening', port } satisfies ProxyMessage);
}

// ---------------------------------------------------------------- parent

function listenLoopback(server: Server): Promise<number> {
  return new Promise((done) => {
    server.listen(0, '127.0.0.1', () => {
      const bound = server.address();
      done(typeof bound === 'object' && bound !== null ? bound.port : 0);
    });
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listenLoopback(probe);
  await new Promise((done) => probe.close(done));
  return port;
}

async function makeCerts(): Promise<{ certs: Certs; cleanup: () => Promise<void> }> {
  const { CertificateAuthority } = await import('../src/mesh/identity/ca.js');
  const { generateWorkloadKey } = await import('../src/mesh/identity/workload.js');
  const dir = await mkdtemp(join(tmpdir(), 'strata-hbone-bench-'));
  const ca = await CertificateAuthority.open({ dir, trustDomain: 'cluster.local' });
  const issue = async (serviceAccount: string) => {
    const id = { trustDomain: 'cluster.local', namespace: 'bench', serviceAccount };
    const key = await generateWorkloadKey();
    const issued = await ca.sign(await key.createCsr(id), id);
    return JSON.parse(
      JSON.stringify({ ...issued, privateKeyPem: key.privateKeyPem }),
    ) as SerializedCert;
  };
  return {
    certs: {
      trustBundlePem: ca.trustBundlePem(),
      client: await issue('client'),
      server: await issue('server'),
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

class ProxyProcess {
  readonly child: ChildProcess;
  readonly ports: Promise<number[]>;
  constructor(args: string[], expectPorts: number, index: number) {
    // HBONE_PROXY_NODE_ARGS: extra node flags for the proxies (`--cpu-prof --cpu-prof-dir=/tmp/p`).
    const execArgv = (process.env.HBONE_PROXY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    // HBONE_PROXY_ENV_<i>: `NAME=value ...` for the proxies of the i-th --impl only (from 0),
    // to compare an environment variable A/B with the same tree given twice.
    const extraEnv = Object.fromEntries(
      (process.env[`HBONE_PROXY_ENV_${index}`] ?? '')
        .split(' ')
        .filter((a) => a.includes('='))
        .map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]),
    );
    this.child = fork(fileURLToPath(import.meta.url), args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv,
      env: { ...process.env, ...extraEnv },
    });
    this.ports = new Promise((done, fail) => {
      const ports: number[] = [];
      const onMessage = (message: ProxyMessage) => {
        if (message.type !== 'listening') return;
        ports.push(message.port);
        if (ports.length === expectPorts) {
          this.child.off('message', onMessage);
          done(ports);
        }
      };
      this.child.on('message', onMessage);
      this.child.once('exit', (code) => {
        fail(new Error(`proxy exited ${String(code)}`));
      });
    });
  }
  usage(): Promise<{ cpuUs: number; userUs: number; rssMb: number }> {
    return new Promise((done) => {
      const onMessage = (message: ProxyMessage) => {
        if (message.type !== 'usage') return;
        this.child.off('message', onMessage);
        done(message);
      };
      this.child.on('message', onMessage);
      this.child.send('usage');
    });
  }
}

function runChild(command: string, args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', fail);
    child.once('close', (code) => {
      if (code === 0) done(out);
      else fail(new Error(`${command} exited ${code}: ${out}`));
    });
  });
}

/** Microseconds per round trip of a 64-byte message, `count` in sequence, sorted. */
async function pingPong(port: number, count: number): Promise<number[]> {
  const socket: Socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise((done) => socket.once('connect', done));
  const message = Buffer.alloc(64, 7);
  const times: number[] = [];
  for (let i = 0; i < count + 100; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((done) => {
      let received = 0;
      const onData = (chunk: Buffer) => {
        received += chunk.length;
        if (received >= message.length) {
          socket.off('data', onData);
          done();
        }
      };
      socket.on('data', onData);
      socket.write(message);
    });
    // The first 100 warm the path up.
    if (i >= 100) times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  socket.destroy();
  return times.sort((a, b) => a - b);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? NaN)
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

interface Options {
  rounds: number;
  seconds: number;
  rate: number;
  connections: number;
  iperfSeconds: number;
  impls: string[];
  latency: boolean;
  iperf: boolean;
  reverse: boolean;
  /** Sequential 64-byte round trips through an echo server per round (0: none). */
  pingPong: number;
}

function parse(argv: string[]): Options {
  const options: Options = {
    rounds: 3,
    seconds: 5,
    rate: 1000,
    connections: 4,
    iperfSeconds: 3,
    impls: [defaultImpl],
    latency: true,
    iperf: true,
    reverse: false,
    pingPong: 2000,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i] ?? '';
    if (arg === '--rounds') options.rounds = Number(value());
    else if (arg === '--seconds') options.seconds = Number(value());
    else if (arg === '--rate') options.rate = Number(value());
    else if (arg === '--connections') options.connections = Number(value());
    else if (arg === '--iperf-seconds') options.iperfSeconds = Number(value());
    else if (arg === '--impl')
      options.impls = value()
        .split(',')
        .map((p) => resolve(p));
    else if (arg === '--no-latency') options.latency = false;
    else if (arg === '--no-iperf') options.iperf = false;
    else if (arg === '--reverse') options.reverse = true;
    else if (arg === '--pingpong') options.pingPong = Number(value());
    else throw new Error(`Unknown argument ${String(arg)}`);
  }
  return options;
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  console.log(
    `hbone-loopback: node ${process.version}, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const { certs, cleanup } = await makeCerts();
  const httpPort = await freePort();
  const iperfPort = await freePort();
  const httpServer = spawn(process.execPath, [join(here, 'mesh-server.js'), String(httpPort)], {
    stdio: 'ignore',
  });
  const iperfServer = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)], {
    stdio: 'ignore',
  });
  const echo = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  const echoPort = await listenLoopback(echo);
  const processes: ProxyProcess[] = [];
  try {
    const certsArg = JSON.stringify(certs);
    const modes: {
      name: string;
      http: number;
      iperf: number;
      echo: number;
      outbound?: ProxyProcess;
      inbound?: ProxyProcess;
    }[] = [{ name: 'plain', http: httpPort, iperf: iperfPort, echo: echoPort }];
    for (const [index, impl] of options.impls.entries()) {
      const inbound = new ProxyProcess(['inbound', impl, certsArg], 1, index);
      processes.push(inbound);
      const [peerPort = 0] = await inbound.ports;
      const outbound = new ProxyProcess(
        [
          'outbound',
          impl,
          certsArg,
          String(peerPort),
          String(httpPort),
          String(iperfPort),
          String(echoPort),
        ],
        3,
        index,
      );
      processes.push(outbound);
      const [http = 0, iperf = 0, echoVia = 0] = await outbound.ports;
      modes.push({
        name: options.impls.length === 1 ? 'tunnel' : `tunnel-${String.fromCharCode(65 + index)}`,
        http,
        iperf,
        echo: echoVia,
        outbound,
        inbound,
      });
      log(
        `${modes.at(-1)?.name}: ${impl} (outbound pid ${outbound.child.pid}, inbound pid ${inbound.child.pid})`,
      );
    }
    await sleep(300);
    const latency = new Map<
      string,
      {
        p50: number[];
        p90: number[];
        p99: number[];
        outCpu: number[];
        inCpu: number[];
        rss: number[];
      }
    >();
    const iperf = new Map<string, number[]>();
    const rtt = new Map<string, number[]>();
    const rtt90 = new Map<string, number[]>();
    const bulkCpu = new Map<string, { out: number[]; in: number[]; rss: number[] }>();
    for (const mode of modes) {
      latency.set(mode.name, { p50: [], p90: [], p99: [], outCpu: [], inCpu: [], rss: [] });
      iperf.set(mode.name, []);
      bulkCpu.set(mode.name, { out: [], in: [], rss: [] });
      rtt.set(mode.name, []);
      rtt90.set(mode.name, []);
    }
    for (let round = 1; round <= options.rounds; round++) {
      const order = round % 2 === 1 ? modes : [...modes].reverse();
      if (options.pingPong > 0) {
        for (const mode of order) {
          const times = await pingPong(mode.echo, options.pingPong);
          rtt.get(mode.name)?.push(times[Math.floor(times.length / 2)] ?? NaN);
          rtt90.get(mode.name)?.push(times[Math.floor(times.length * 0.9)] ?? NaN);
          log(
            `round ${round} ${mode.name}: 64-byte round trip p50 ${rtt.get(mode.name)?.at(-1)?.toFixed(0)} µs`,
          );
        }
      }
      if (options.latency) {
        for (const mode of order) {
          const before = await Promise.all([mode.outbound?.usage(), mode.inbound?.usage()]);
          const started = process.hrtime.bigint();
          const out = await runChild(process.execPath, [
            join(here, 'mesh-client.js'),
            '127.0.0.1',
            String(mode.http),
            String(options.rate),
            String(options.connections),
            String(options.seconds),
            '1',
          ]);
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          const after = await Promise.all([mode.outbound?.usage(), mode.inbound?.usage()]);
          const summary = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as {
            p50: number;
            p90: number;
            p99: number;
            achievedRate: number;
            errors: number;
          };
          const row = latency.get(mode.name);
          row?.p50.push(summary.p50);
          row?.p90.push(summary.p90);
          row?.p99.push(summary.p99);
          const per1k = (a?: { cpuUs: number }, b?: { cpuUs: number }) =>
            a && b ? (b.cpuUs - a.cpuUs) / 1e6 / seconds / (summary.achievedRate / 1000) : NaN;
          const userShare = (
            a?: { cpuUs: number; userUs: number },
            b?: { cpuUs: number; userUs: number },
          ) => (a && b ? ((b.userUs - a.userUs) / (b.cpuUs - a.cpuUs)).toFixed(2) : '-');
          row?.outCpu.push(per1k(before[0], after[0]));
          row?.inCpu.push(per1k(before[1], after[1]));
          row?.rss.push(Math.max(after[0]?.rssMb ?? NaN, after[1]?.rssMb ?? NaN));
          log(
            `round ${round} ${mode.name}: p50 ${summary.p50.toFixed(3)} p90 ${summary.p90.toFixed(3)} p99 ${summary.p99.toFixed(3)} ms, ` +
              `${summary.errors} errors, cpu/1k out ${row?.outCpu.at(-1)?.toFixed(3)} in ${row?.inCpu.at(-1)?.toFixed(3)}` +
              ` (user share ${userShare(before[0], after[0])} / ${userShare(before[1], after[1])})`,
          );
        }
      }
      if (options.iperf) {
        for (const mode of order) {
          const args = [
            '-c',
            '127.0.0.1',
            '-p',
            String(mode.iperf),
            '-t',
            String(options.iperfSeconds),
            '-J',
          ];
          if (options.reverse) args.push('-R');
          const before = await Promise.all([mode.outbound?.usage(), mode.inbound?.usage()]);
          const report = JSON.parse(
            // iperf3 exits 1 on failure with its JSON (and the reason) on stdout.
            await runChild('iperf3', args).catch((error: unknown) =>
              String(error instanceof Error ? error.message : error).replace(/^[^{]*/, ''),
            ),
          ) as {
            end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
            error?: string;
          };
          if (report.error !== undefined)
            log(`round ${round} ${mode.name}: iperf3 failed: ${report.error}`);
          const after = await Promise.all([mode.outbound?.usage(), mode.inbound?.usage()]);
          const gbps = (report.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
          const gigabytes = (report.end?.sum_received?.bytes ?? NaN) / 1e9;
          // CPU seconds per GB moved: how much work the proxy does per byte, which the
          // machine's noise moves less than the throughput itself.
          const perGb = (a?: { cpuUs: number }, b?: { cpuUs: number }) =>
            a && b ? (b.cpuUs - a.cpuUs) / 1e6 / gigabytes : NaN;
          iperf.get(mode.name)?.push(gbps);
          bulkCpu.get(mode.name)?.out.push(perGb(before[0], after[0]));
          bulkCpu.get(mode.name)?.in.push(perGb(before[1], after[1]));
          bulkCpu
            .get(mode.name)
            ?.rss.push(Math.max(after[0]?.rssMb ?? NaN, after[1]?.rssMb ?? NaN));
          log(
            `round ${round} ${mode.name}: iperf3 ${gbps.toFixed(2)} Gbit/s, CPU s/GB out ${perGb(before[0], after[0]).toFixed(3)} in ${perGb(before[1], after[1]).toFixed(3)}`,
          );
        }
      }
    }
    const plain = latency.get('plain');
    const plainGbps = median(iperf.get('plain') ?? []);
    const result: Record<string, unknown> = {};
    console.log(
      'mode        p50     p90     p99   +p90   cpu/1k out  cpu/1k in  rss MB   Gbit/s  % plain  s/GB out  s/GB in  bulk rss  rtt50 µs  rtt90 µs',
    );
    for (const mode of modes) {
      const row = latency.get(mode.name);
      const gbps = median(iperf.get(mode.name) ?? []);
      const figures = {
        p50: median(row?.p50 ?? []),
        p90: median(row?.p90 ?? []),
        p99: median(row?.p99 ?? []),
        addedP90: median(row?.p90 ?? []) - median(plain?.p90 ?? []),
        outCpuPer1k: median(row?.outCpu ?? []),
        inCpuPer1k: median(row?.inCpu ?? []),
        rssMb: median(row?.rss ?? []),
        gbps,
        percentOfPlain: (gbps / plainGbps) * 100,
        bulkCpuPerGbOut: median(bulkCpu.get(mode.name)?.out ?? []),
        bulkCpuPerGbIn: median(bulkCpu.get(mode.name)?.in ?? []),
        rttP50Us: median(rtt.get(mode.name) ?? []),
        rttP90Us: median(rtt90.get(mode.name) ?? []),
        bulkRssMb: Math.max(...(bulkCpu.get(mode.name)?.rss ?? [])),
      };
      result[mode.name] = figures;
      const f = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '-').padStart(7);
      console.log(
        `${mode.name.padEnd(10)}${f(figures.p50)} ${f(figures.p90)} ${f(figures.p99)} ${f(figures.addedP90)}    ${f(figures.outCpuPer1k)}    ${f(figures.inCpuPer1k)} ${f(figures.rssMb, 1)}  ${f(gbps, 2)}  ${f(figures.percentOfPlain, 1)}   ${f(figures.bulkCpuPerGbOut)}  ${f(figures.bulkCpuPerGbIn)}  ${f(figures.bulkRssMb, 1)}   ${f(figures.rttP50Us, 0)}   ${f(figures.rttP90Us, 0)}`,
      );
    }
    console.log(JSON.stringify({ options, result }));
  } finally {
    // Asked to exit (not killed), so --cpu-prof can write its profile.
    await Promise.all(
      processes.map(
        (p) =>
          new Promise((done) => {
            // A proxy that failed to start has exited already.
            if (!p.child.connected) {
              p.child.kill('SIGKILL');
              done(undefined);
              return;
            }
            const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
            p.child.once('exit', () => {
              clearTimeout(timer);
              done(undefined);
            });
            p.child.send('exit');
          }),
      ),
    );
    httpServer.kill('SIGKILL');
    echo.close();
    iperfServer.kill('SIGKILL');
    await cleanup();
  }
}

const [role, impl = defaultImpl, certsArg = '{}', ...rest] = process.argv.slice(2);
if (role === 'inbound') {
  await runInbound(impl, JSON.parse(certsArg) as Certs);
} else if (role === 'outbound') {
  const [peer = '0', ...destinations] = rest;
  await runOutbound(impl, JSON.parse(certsArg) as Certs, Number(peer), destinations.map(Number));
} else {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  });
}
