/**
 * One source's probes for the NetworkPolicy truth table, run inside its
 * network namespace (`nsenter --net=<netns> node policy-prober.js`) for as
 * long as its stdin stays open: each line in is a ProbeRequest as JSON, and
 * the line out, in the same order, is one ProbeOutcome per target. Every
 * probe of a request runs at once. Staying up saves a process start (about
 * 100 ms of CPU, nine at a time) on every round.
 *
 * - TCP: connect and read the server's reply. A policy drops packets, so a
 *   denied probe is a timeout; a refused connection is reported as such.
 * - UDP: a connected socket sends a datagram, again every timeout/5, until
 *   the reply arrives or the timeout passes. Each target gets the source port
 *   the request names (unique per round), so a probe is never a conntrack
 *   entry an earlier probe left behind: NetworkPolicy judges new connections,
 *   and for UDP "new" is a 5-tuple conntrack has not seen.
 *
 * A probe succeeded when the reply names the pod expected (`expect`), which
 * also shows the address reached the right pod.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

export type Protocol = 'TCP' | 'UDP';

export interface ProbeTarget {
  /** The caller's name for this probe, echoed in the outcome. */
  key: string;
  ip: string;
  port: number;
  protocol: Protocol;
  /** The reply that means the right pod answered: its `<namespace>/<name>`. */
  expect: string;
  /** UDP only: the local port to send from (0: any). */
  sourcePort?: number;
}

export interface ProbeRequest {
  timeoutMs: number;
  targets: ProbeTarget[];
}

export interface ProbeOutcome {
  key: string;
  /** Whether the expected pod answered. */
  connected: boolean;
  /** What came back, if anything. */
  reply?: string;
  /** Why nothing (or the wrong thing) came back: `timeout`, an errno code. */
  error?: string;
  elapsedMs: number;
}

function probeTcp(target: ProbeTarget, timeoutMs: number): Promise<Omit<ProbeOutcome, 'key'>> {
  const started = Date.now();
  return new Promise((resolve) => {
    let reply = '';
    let done = false;
    const socket = connect({ host: target.ip, port: target.port });
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = reply.trim();
      const connected = error === undefined && text === target.expect;
      resolve({
        connected,
        ...(text === '' ? {} : { reply: text }),
        ...(connected ? {} : { error: error ?? 'wrong reply' }),
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => {
      finish('timeout');
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (reply += chunk));
    socket.on('end', () => {
      finish();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      finish(error.code ?? error.message);
    });
  });
}

function probeUdp(target: ProbeTarget, timeoutMs: number): Promise<Omit<ProbeOutcome, 'key'>> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    let done = false;
    let resend: NodeJS.Timeout | undefined;
    const finish = (reply?: string, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(resend);
      socket.close();
      const text = reply?.trim() ?? '';
      const connected = error === undefined && text === target.expect;
      resolve({
        connected,
        ...(text === '' ? {} : { reply: text }),
        ...(connected ? {} : { error: error ?? 'wrong reply' }),
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => {
      finish(undefined, 'timeout');
    }, timeoutMs);
    const send = (): void => {
      socket.send('probe', (error) => {
        if (error) finish(undefined, (error as NodeJS.ErrnoException).code ?? error.message);
      });
    };
    socket.on('error', (error: NodeJS.ErrnoException) => {
      finish(undefined, error.code ?? error.message);
    });
    socket.on('message', (message) => {
      finish(message.toString('utf8'));
    });
    socket.bind(target.sourcePort ?? 0, () => {
      socket.connect(target.port, target.ip, () => {
        send();
        resend = setInterval(send, Math.max(50, Math.floor(timeoutMs / 5)));
      });
    });
  });
}

/** Every probe of the request at once. */
function probeAll(request: ProbeRequest): Promise<ProbeOutcome[]> {
  return Promise.all(
    request.targets.map(async (target): Promise<ProbeOutcome> => {
      const probe = target.protocol === 'TCP' ? probeTcp : probeUdp;
      return { key: target.key, ...(await probe(target, request.timeoutMs)) };
    }),
  );
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue;
  const outcomes = await probeAll(JSON.parse(line) as ProbeRequest);
  process.stdout.write(`${JSON.stringify(outcomes)}\n`);
}
