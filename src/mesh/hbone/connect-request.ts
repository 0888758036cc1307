/**
 * The HBONE CONNECT request's parts, pure: the `:authority` (`<ip>:<port>` of
 * the destination workload, an IPv6 address in brackets, never a name) and the
 * headers ztunnel sends with it (istio/ztunnel src/proxy/outbound.rs):
 * `forwarded: for=<source ip>` (RFC 7239) and a W3C `traceparent`.
 */
import { randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/** A TCP endpoint: an IP address (no brackets) and a port. */
export interface SocketAddress {
  address: string;
  port: number;
}

const portPattern = /^[0-9]{1,5}$/;

/** The endpoint an HBONE `:authority` names, or undefined when it is not `<ip>:<port>`. */
export function parseAuthority(authority: string): SocketAddress | undefined {
  const colon = authority.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = authority.slice(0, colon);
  const portText = authority.slice(colon + 1);
  if (!portPattern.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) {
    const address = host.slice(1, -1);
    // A zone (fe80::1%eth0) means nothing on another node.
    return isIPv6(address) && !address.includes('%') ? { address, port } : undefined;
  }
  return isIPv4(host) ? { address: host, port } : undefined;
}

/** `<ip>:<port>`, with an IPv6 address in brackets (RFC 3986 authority). */
export function formatAuthority(endpoint: SocketAddress): string {
  return isIPv6(endpoint.address)
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

/** The `forwarded` header ztunnel sends: `for=<ip>`, an IPv6 address quoted in brackets (RFC 7239 section 6). */
export function forwardedFor(address: string): string {
  return isIPv6(address) ? `for="[${address}]"` : `for=${address}`;
}

/** The address in the first `for=` of a `forwarded` header, or undefined when there is none. */
export function parseForwardedFor(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const first = header.split(',')[0] ?? '';
  for (const pair of first.split(';')) {
    const [name, value] = pair.trim().split('=', 2);
    if (name?.toLowerCase() !== 'for' || value === undefined) continue;
    const unquoted = value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    const bare =
      unquoted.startsWith('[') && unquoted.endsWith(']') ? unquoted.slice(1, -1) : unquoted;
    return isIPv4(bare) || isIPv6(bare) ? bare : undefined;
  }
  return undefined;
}

/** A new W3C trace context `traceparent` (version 00, sampled), as ztunnel starts one per connection. */
export function newTraceparent(): string {
  const bytes = randomBytes(24).toString('hex');
  return `00-${bytes.slice(0, 32)}-${bytes.slice(32, 48)}-01`;
}
