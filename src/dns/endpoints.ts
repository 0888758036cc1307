/**
 * `host:port` as the DNS server's flags take it (`--listen`, `--upstream`):
 * the host an IP literal, IPv6 in brackets (`[::1]:53`), the port optional
 * where a default is given. No name lookups: the server must not depend on
 * DNS to find where to listen or forward.
 */
import { type IpFamily, formatIp, parseIp } from '../netaddr/ip.js';

export interface DnsEndpoint {
  /** The address in canonical text. */
  host: string;
  port: number;
  family: IpFamily;
}

/** Parses `ip:port`, `[ipv6]:port` (or, with `defaultPort`, a bare IP); undefined when malformed. */
export function parseEndpoint(text: string, defaultPort?: number): DnsEndpoint | undefined {
  let hostText: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    hostText = bracketed[1] ?? '';
    portText = bracketed[2];
  } else if ((text.match(/:/g) ?? []).length > 1) {
    // A bare IPv6 address: no port can be told apart from its last group.
    hostText = text;
  } else {
    const colon = text.lastIndexOf(':');
    hostText = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  const ip = parseIp(hostText);
  if (!ip) return undefined;
  if (portText === undefined) {
    if (defaultPort === undefined) return undefined;
    return { host: formatIp(ip), port: defaultPort, family: ip.family };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return undefined;
  return { host: formatIp(ip), port: Number(portText), family: ip.family };
}

/** `10.0.0.1:53`, `[fd00::1]:53`. */
export function formatEndpoint(endpoint: { host: string; port: number }): string {
  return endpoint.host.includes(':')
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}
