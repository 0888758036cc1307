/**
 * `strata demo`: two pods on one node, wired by strata-cni exactly as a
 * container runtime would wire them, talking over TCP; then everything is
 * removed again. Every namespace is created by the demo, named uniquely for
 * the run, and deleted on every exit path (including Ctrl-C).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pluginPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'strata-cni');

interface Out {
  write(text: string): void;
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

function plugin(node: string, command: string, pod: string, conf: string): Record<string, unknown> {
  const r = spawnSync('ip', ['netns', 'exec', node, pluginPath], {
    input: conf,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: `demo-${pod}`,
      CNI_NETNS: `/var/run/netns/${pod}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: dirname(pluginPath),
    },
  });
  if (r.status !== 0) throw new Error(`strata-cni ${command} for ${pod}: ${r.stdout.trim()}`);
  return r.stdout.trim() === '' ? {} : (JSON.parse(r.stdout) as Record<string, unknown>);
}

/** Runs the demo; returns the exit code. */
export async function runDemo(out: Out): Promise<number> {
  if (process.getuid?.() !== 0) {
    out.write('strata demo needs root: it creates network namespaces\n');
    return 1;
  }
  if (!existsSync(pluginPath)) {
    out.write(`strata demo: ${pluginPath} is missing; run npm run build\n`);
    return 1;
  }
  const tag = process.pid.toString(36);
  const node = `sdemo${tag}node`;
  const pods = [`sdemo${tag}a`, `sdemo${tag}b`];
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-demo-'));
  const made: string[] = [];
  const servers: ReturnType<typeof spawn>[] = [];
  const cleanup = (): void => {
    for (const s of servers) s.kill('SIGKILL');
    for (const ns of made.reverse()) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const conf = JSON.stringify({
    cniVersion: '1.1.0',
    name: 'demo',
    type: 'strata-cni',
    bridge: 'cni0',
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ipam: {
      type: 'strata-ipam',
      dataDir,
      ranges: [[{ subnet: '10.244.0.0/24' }], [{ subnet: 'fd00:10:244::/64' }]],
    },
  });
  try {
    out.write(`creating node namespace ${node} and pod namespaces ${pods.join(', ')}\n`);
    for (const ns of [node, ...pods]) {
      ip(['netns', 'add', ns]);
      made.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const addresses: string[] = [];
    for (const pod of pods) {
      const started = process.hrtime.bigint();
      const result = plugin(node, 'ADD', pod, conf) as { ips: { address: string }[] };
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const ips = result.ips.map((i) => i.address);
      addresses.push(ips[0]?.split('/')[0] ?? '');
      out.write(`strata-cni ADD ${pod}: eth0 ${ips.join(', ')} (${ms.toFixed(1)} ms)\n`);
    }
    const [serverPod, clientPod] = pods as [string, string];
    const serverIp = addresses[0] ?? '';
    out.write(`pod ${serverPod} listens on ${serverIp}:8080\n`);
    const server = spawn(
      'ip',
      [
        'netns',
        'exec',
        serverPod,
        process.execPath,
        '-e',
        `require('net').createServer((s) => s.end('hello from ${serverPod}\\n')).listen(8080, '${serverIp}', () => console.log('ready'))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.stdout?.once('data', () => {
        resolve();
      });
      server.once('exit', (code) => {
        reject(new Error(`the server in ${serverPod} exited (${code ?? 'signal'})`));
      });
    });
    const client = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        clientPod,
        process.execPath,
        '-e',
        `const s = require('net').connect(8080, '${serverIp}'); s.pipe(process.stdout); s.on('error', (e) => { console.error(e.message); process.exit(1); });`,
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    if (client.status !== 0)
      throw new Error(`pod ${clientPod} could not reach ${serverIp}:8080: ${client.stderr}`);
    out.write(`pod ${clientPod} connected to ${serverIp}:8080 and read: ${client.stdout.trim()}\n`);
    out.write(
      `allocations in ${join(dataDir, 'demo')}: ${readdirSync(join(dataDir, 'demo')).join(' ')}\n`,
    );
    for (const pod of pods) {
      plugin(node, 'DEL', pod, conf);
      out.write(`strata-cni DEL ${pod}\n`);
    }
    out.write('removing the namespaces\n');
    return 0;
  } catch (error) {
    out.write(`strata demo failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
}
