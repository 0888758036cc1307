/**
 * The open-loop HTTP client of bench:mesh, run inside the client pod's network
 * namespace (`ip netns exec <pod netns> node dist/bench/mesh-client.js ...`):
 *
 *   node dist/bench/mesh-client.js <host> <port> <rate/s> <connections> <seconds> [warmup s]
 *
 * Requests are due on a fixed timetable (request i at start + i / rate), dealt round
 * robin to `connections` keep-alive connections (one request in flight per connection,
 * as HTTP/1.1 without pipelining: a request due while its connection is busy waits).
 * Latency is measured from the time the request was due, not from when it was sent, so
 * a slow answer delays and counts against every request queued behind it (no
 * coordinated omission, as wrk2 and fortio's fixed-rate mode). Requests due during the
 * warm-up are sent but not counted.
 *
 * Prints one JSON line: counts, the achieved rate, and p50/p90/p99/max in ms.
 */
import { Agent, request } from 'node:http';

interface Summary {
  due: number;
  counted: number;
  errors: number;
  achievedRate: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  lateSendP99: number;
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at] ?? NaN;
}

async function main(): Promise<void> {
  const [host = '', portArg = '', rateArg = '1000', connArg = '4', secArg = '10', warmArg = '1'] =
    process.argv.slice(2);
  const port = Number(portArg);
  const rate = Number(rateArg);
  const connections = Number(connArg);
  const seconds = Number(secArg);
  const warmup = Number(warmArg);
  if (!host || !(port > 0) || !(rate > 0) || !(connections > 0) || !(seconds > 0)) {
    console.error(
      'Usage: node dist/bench/mesh-client.js <host> <port> <rate/s> <connections> <seconds> [warmup s]',
    );
    process.exitCode = 2;
    return;
  }
  const agents = Array.from(
    { length: connections },
    () => new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 }),
  );
  const total = Math.round(rate * (seconds + warmup));
  const firstCounted = Math.round(rate * warmup);
  const latencies = new Float64Array(total - firstCounted);
  const lateSend = new Float64Array(total - firstCounted);
  let counted = 0;
  let errors = 0;
  let finished = 0;
  const intervalNs = 1e9 / rate;
  // Start 50 ms from now so the first requests are not late by the set-up.
  const start = process.hrtime.bigint() + 50_000_000n;
  let next = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  const send = (i: number, dueNs: bigint): void => {
    const sentLate = Number(process.hrtime.bigint() - dueNs) / 1e6;
    const complete = (ok: boolean): void => {
      const ms = Number(process.hrtime.bigint() - dueNs) / 1e6;
      if (!ok) errors += 1;
      else if (i >= firstCounted) {
        latencies[counted] = ms;
        lateSend[counted] = sentLate;
        counted += 1;
      }
      finished += 1;
      if (finished === total) resolveDone();
    };
    const req = request(
      { host, port, path: '/', method: 'GET', agent: agents[i % connections] },
      (res) => {
        res.resume();
        res.once('end', () => {
          complete(res.statusCode === 200);
        });
        res.once('error', () => {
          complete(false);
        });
      },
    );
    req.once('error', () => {
      complete(false);
    });
    req.end();
  };

  const tick = (): void => {
    const now = process.hrtime.bigint();
    while (next < total) {
      const due = start + BigInt(Math.round(next * intervalNs));
      if (due > now) break;
      send(next, due);
      next += 1;
    }
    if (next < total) {
      const due = start + BigInt(Math.round(next * intervalNs));
      const waitMs = Math.max(0, Number(due - process.hrtime.bigint()) / 1e6 - 0.2);
      setTimeout(tick, waitMs);
    }
  };
  setTimeout(tick, 50);
  // Give up on answers still missing 10 s after the last request was due.
  const timeout = setTimeout(
    () => {
      errors += total - finished;
      resolveDone();
    },
    (seconds + warmup) * 1000 + 10_000,
  );
  await done;
  clearTimeout(timeout);
  const elapsed = seconds + warmup;
  const sorted = latencies.slice(0, counted).sort();
  const late = lateSend.slice(0, counted).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const summary: Summary = {
    due: total,
    counted,
    errors,
    achievedRate: (finished - errors) / elapsed,
    p50: pct(sorted, 50),
    p90: pct(sorted, 90),
    p99: pct(sorted, 99),
    p999: pct(sorted, 99.9),
    max: sorted[sorted.length - 1] ?? NaN,
    mean: counted > 0 ? sum / counted : NaN,
    lateSendP99: pct(late, 99),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  for (const agent of agents) agent.destroy();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
