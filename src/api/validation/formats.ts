/**
 * The text formats upstream validates, each returning the problem with a
 * value (undefined when valid), in apimachinery's wording where it has one:
 * port numbers and IANA service port names, DNS names, IPs and CIDRs,
 * durations, HTTP header names.
 */
import { parseIp, parsePrefix } from '../../netaddr/ip.js';
import type { FieldError } from '../types.js';
import { type Format, invalid } from './schema.js';
import { isDns1123Label, isDns1123Subdomain, isQualifiedName } from './meta.js';

export const portProtocols = ['TCP', 'UDP', 'SCTP'] as const;

export const dns1123Label: Format = (value) =>
  isDns1123Label(value)
    ? undefined
    : 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "-", and must start and end with an alphanumeric character (at most 63 characters)';

export const dns1123Subdomain: Format = (value) =>
  isDns1123Subdomain(value)
    ? undefined
    : 'a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "-" or ".", and must start and end with an alphanumeric character';

/** RFC 1035 label: a DNS-1123 label that starts with a letter (Service names). */
export const dns1035Label: Format = (value) =>
  value.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(value)
    ? undefined
    : 'a DNS-1035 label must consist of lower case alphanumeric characters or "-", start with an alphabetic character, and end with an alphanumeric character (at most 63 characters)';

export const qualifiedName: Format = (value) =>
  isQualifiedName(value)
    ? undefined
    : 'must be a qualified name: an optional DNS subdomain prefix and "/", then at most 63 alphanumeric characters, "-", "_" or ".", starting and ending with an alphanumeric character';

/** apimachinery IsValidPortName: an IANA_SVC_NAME (RFC 6335). */
export const portName: Format = (value) => {
  const problems: string[] = [];
  if (value.length > 15) problems.push('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(value)) {
    problems.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  }
  if (!/[a-z]/.test(value)) problems.push('must contain at least one letter (a-z)');
  if (value.includes('--')) problems.push('must not contain consecutive hyphens');
  if (value.startsWith('-') || value.endsWith('-')) {
    problems.push('must not begin or end with a hyphen');
  }
  return problems.length === 0 ? undefined : problems.join('; ');
};

export function isPortNumber(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535;
}

/** ValidatePortNumOrName: a port number 1-65535, or a port name. */
export function checkPortNumberOrName(
  value: number | string,
  path: string,
  errors: FieldError[],
): void {
  if (typeof value === 'number') {
    if (!isPortNumber(value))
      errors.push(invalid(path, value, 'must be between 1 and 65535, inclusive'));
    return;
  }
  const problem = portName(value);
  if (problem !== undefined) errors.push(invalid(path, value, problem));
}

export const ipAddress: Format = (value) =>
  parseIp(value) ? undefined : 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)';

export const cidr: Format = (value) =>
  parsePrefix(value)
    ? undefined
    : 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

/** An address or a CIDR (Istio ipBlocks, destinationSubnets). */
export const ipOrCidr: Format = (value) =>
  (parseIp(value) ?? parsePrefix(value))
    ? undefined
    : 'must be a valid IP address or CIDR (e.g. 10.9.8.7 or 10.9.8.0/24)';

/** Kubernetes' classic environment variable name rule (IsEnvVarName). */
export const envVarName: Format = (value) =>
  /^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(value)
    ? undefined
    : 'a valid environment variable name must consist of alphabetic characters, digits, "_", "-", or ".", and must not start with a digit';

/** An RFC 7230 token, the form of an HTTP header name. */
export const httpHeaderName: Format = (value) =>
  /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(value) && value.length <= 256
    ? undefined
    : 'must be a valid HTTP header name (RFC 7230 token characters)';

/**
 * The path (and query) of an HTTP request target: absolute, and only
 * visible ASCII, so it goes on the request line as it is. Spaces, control
 * characters and other characters a client would have to escape are refused
 * (percent-encode them), rather than left to fail or split the request when
 * the node probes.
 */
export const urlPath: Format = (value) => {
  if (!value.startsWith('/')) return "must be an absolute URL path, starting with '/'";
  return /^[\x21-\x7e]*$/.test(value)
    ? undefined
    : 'must be a valid URL path: no spaces or control characters (percent-encode them, as %20)';
};

/** RFC 9110 field-value: visible characters, spaces and tabs; never CR, LF or another control character. */
export const httpHeaderValue: Format = (value) =>
  /^[\t\x20-\x7e\x80-\xff]*$/.test(value)
    ? undefined
    : 'must be visible characters, spaces and tabs: no CR, LF or other control characters';

const goDurationUnits: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.ParseDuration in milliseconds ("1h30m", "0.5s", "250ms"); undefined when malformed. */
export function parseGoDuration(text: string): number | undefined {
  const body = text.startsWith('-') || text.startsWith('+') ? text.slice(1) : text;
  if (body === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < body.length) {
    part.lastIndex = at;
    const m = part.exec(body);
    if (!m) return undefined;
    total += Number(m[1]) * (goDurationUnits[m[2] ?? ''] ?? Number.NaN);
    at = part.lastIndex;
  }
  if (body === '' || Number.isNaN(total)) return undefined;
  return text.startsWith('-') ? -total : total;
}

/** Istio's ValidateDuration: a duration of at least 1ms, to millisecond precision. */
export const istioDuration: Format = (value) => {
  const ms = parseGoDuration(value);
  if (ms === undefined) return 'must be a duration such as "10s", "1.5s" or "100ms"';
  if (ms < 1) return 'duration must be greater than 1ms';
  if (!Number.isInteger(Math.round(ms * 1e6) / 1e6)) {
    return 'only durations to ms precision are supported';
  }
  return undefined;
};

/** Gateway API Duration (GEP-2257): 1-4 number+unit parts, units h, m, s, ms. */
export const gatewayDuration: Format = (value) =>
  /^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(value)
    ? undefined
    : 'must be a Gateway API duration such as "10s", "1m30s" or "500ms"';

/** Milliseconds of a Gateway API duration. */
export function gatewayDurationMs(value: string): number | undefined {
  return gatewayDuration(value) === undefined ? parseGoDuration(value) : undefined;
}

/** A percentage as intstr writes one: "25%". */
export function isPercent(value: string): boolean {
  return /^[0-9]+%$/.test(value);
}

/** A DNS name that may start with a "*." label (Istio hosts, Gateway API hostnames). */
export function isWildcardDomain(value: string, options: { upperCase?: boolean } = {}): boolean {
  if (value === '*') return true;
  const rest = value.startsWith('*.') ? value.slice(2) : value;
  if (rest === '' || rest.length > 253) return false;
  const label = options.upperCase
    ? /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/
    : /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  return rest.split('.').every((part) => part.length <= 63 && label.test(part));
}
