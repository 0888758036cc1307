/**
 * The lifetime a node asks the CA for its workload certificates
 * (`strata up --workload-cert-ttl`, passed on to every `strata agent`),
 * Istio's SECRET_TTL: 24 h by default, written as a Go-style duration
 * (`90s`, `30m`, `24h`, `1h30m`). One parser and one set of bounds for both
 * commands, so `up` refuses what an agent would.
 */
import { defaultMaxWorkloadTtlSeconds, defaultWorkloadTtlSeconds } from '../identity/ca.js';

/** 24 h, Istio's SECRET_TTL (and the CA's own default). */
export const defaultWorkloadCertTtlSeconds = defaultWorkloadTtlSeconds;
/**
 * The shortest lifetime accepted. Rotation comes at half life, so a node
 * renews every ttl/2 per identity; below this, renewals would come every few
 * seconds and a CA request that takes a second would eat the margin.
 */
export const minWorkloadCertTtlSeconds = 10;
/** The longest: what the CA signs at most (90 days, Istio's MAX_WORKLOAD_CERT_TTL). */
export const maxWorkloadCertTtlSeconds = defaultMaxWorkloadTtlSeconds;

/**
 * `90s`, `30m`, `24h`, `1h30m` in seconds: whole numbers, units h, m and s
 * in that order, each at most once; undefined for anything else.
 */
export function parseWorkloadCertTtl(text: string): number | undefined {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (match === null || text === '') return undefined;
  const [, hours = '0', minutes = '0', seconds = '0'] = match;
  const total = Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds);
  return Number.isSafeInteger(total) ? total : undefined;
}

/** `86400` → `24h`, `5400` → `1h30m`, `90` → `1m30s`: the shortest spelling parseWorkloadCertTtl reads back. */
export function formatWorkloadCertTtl(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const text = `${hours > 0 ? `${hours}h` : ''}${minutes > 0 ? `${minutes}m` : ''}${rest > 0 ? `${rest}s` : ''}`;
  return text === '' ? '0s' : text;
}

/** Why `seconds` cannot be a workload certificate's lifetime, or undefined when it can. */
export function workloadCertTtlProblem(seconds: number): string | undefined {
  if (
    !Number.isSafeInteger(seconds) ||
    seconds < minWorkloadCertTtlSeconds ||
    seconds > maxWorkloadCertTtlSeconds
  ) {
    return `must be from ${formatWorkloadCertTtl(minWorkloadCertTtlSeconds)} to ${formatWorkloadCertTtl(maxWorkloadCertTtlSeconds)} in whole seconds (the longest the CA signs is 90 days)`;
  }
  return undefined;
}

/**
 * The lifetime `text` names, or why it cannot be one: the message names the
 * value and what is expected (the caller prefixes the flag).
 */
export function checkWorkloadCertTtl(
  text: string,
): { ok: true; seconds: number } | { ok: false; problem: string } {
  const seconds = parseWorkloadCertTtl(text);
  if (seconds === undefined) {
    return {
      ok: false,
      problem: `must be a duration in whole seconds such as 90s, 30m, 24h or 1h30m: got ${JSON.stringify(text)}`,
    };
  }
  const problem = workloadCertTtlProblem(seconds);
  if (problem !== undefined)
    return { ok: false, problem: `${problem}: got ${JSON.stringify(text)}` };
  return { ok: true, seconds };
}
