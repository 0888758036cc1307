/**
 * The connection-rate client and server of bench:services and bench:policy, run by
 * their spines in the pod namespaces (`--connect-server PORT LIFETIME`,
 * `--connect-client HOST PORT SECONDS`, `--probe HOST PORT TIMEOUT_MS`): new TCP
 * connections one after the other, each reset by the client as soon as it is up.
 */
import { connect, createServer } from 'node:net';

/** What the client prints: connections made, failed attempts by reason, seconds spent connecting. */
export interface ConnectResult {
  connections: number;
  failures: Record<string, number>;
  /** Seconds spent connecting, the failed attempts left out. */
  seconds: number;
  /** The client's own CPU time over the run. */
  cpuMicros: number;
}

function now(): bigint {
  return process.hrtime.bigint();
}

/** Accepts connections (the client resets each) until SIGTERM or `lifetimeSeconds`. */
export async function connectServer(port: number, lifetimeSeconds: number): Promise<void> {
  const server = createServer((socket) => {
    socket.on('error', () => {
      // The client resets every connection.
    });
  });
  await new Promise<void>((resolve) => server.listen(port, resolve));
  process.stdout.write('ready\n');
  setTimeout(() => process.exit(0), lifetimeSeconds * 1000).unref();
  await new Promise<void>((resolve) => {
    process.on('SIGTERM', () => {
      resolve();
    });
  });
  server.close();
  process.exit(0);
}

/** One connection, reset as soon as it is up: 'connected', or why not (an errno code). */
export function connectOnce(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      // RST instead of FIN: no TIME_WAIT, so the loop never runs out of ports.
      socket.resetAndDestroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(error.code ?? error.message);
    });
  });
}

/** New connections one after the other for `seconds`; prints a ConnectResult. */
export async function connectClient(host: string, port: number, seconds: number): Promise<void> {
  const cpu = process.cpuUsage();
  const start = now();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let connections = 0;
  let stalled = 0n;
  const failures: Record<string, number> = {};
  while (now() < end) {
    const attempt = now();
    const outcome = await connectOnce(host, port, 200);
    if (outcome === 'connected') connections++;
    else {
      failures[outcome] = (failures[outcome] ?? 0) + 1;
      stalled += now() - attempt;
    }
  }
  const used = process.cpuUsage(cpu);
  const result: ConnectResult = {
    connections,
    failures,
    seconds: Number(now() - start - stalled) / 1e9,
    cpuMicros: used.user + used.system,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
