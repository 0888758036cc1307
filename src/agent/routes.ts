/**
 * Routes to other nodes' pods, in the node's namespace.
 *
 * - host-gw: `<peer pod CIDR> via <peer InternalIP> dev eth0`: the underlay
 *   carries pod addresses as they are (Flannel's host-gw backend).
 * - the service CIDR out of the node's link (`<service CIDR> dev eth0`), so
 *   the node's own connections to a cluster IP find a route; nat output
 *   then DNATs them to an endpoint.
 * - vxlan: Flannel's vxlan layout: `<peer pod CIDR> via <peer CIDR's first
 *   address> dev vxlan0 onlink`, a permanent neighbour entry mapping that
 *   address to the peer's VTEP MAC, and an FDB entry sending that MAC to
 *   the peer's InternalIP.
 *
 * What to change is computed purely from the peers and what the kernel
 * shows (`ip -json`); the changes are then applied with `ip -batch` and
 * `bridge -batch`, one process per tool and reconcile. The agent is a
 * long-running daemon and nodes come and go rarely, so a process per
 * reconcile costs nothing that matters, and `ip` and `bridge` already speak
 * the neighbour and FDB messages this would otherwise need new netlink code
 * for. The agent's routes carry their own protocol number, so it removes
 * only what it made.
 */
import { runAsync } from '../kernel/command.js';
import type { Backend } from './options.js';
import type { Peer } from './peers.js';
import { vxlanDevice } from './vxlan.js';

/** `proto 83` ("S") marks the agent's routes (rt_protos has no entry for it). */
export const routeProtocol = 83;

export interface RouteEntry {
  dst: string;
  /** The gateway; '' for a route straight out of the link. */
  via: string;
  dev: string;
  onlink: boolean;
}

export interface NeighbourEntry {
  ip: string;
  mac: string;
}

export interface FdbEntry {
  mac: string;
  dst: string;
}

/** What the kernel should hold for the peers. */
export interface PeerProgram {
  routes: RouteEntry[];
  neighbours: NeighbourEntry[];
  fdb: FdbEntry[];
}

export function compilePeerProgram(
  backend: Backend,
  peers: readonly Peer[],
  nodeInterface: string,
  serviceCidr?: string,
): PeerProgram {
  // The node's own connections to a Service need a route before nat output can DNAT them.
  const services: RouteEntry[] = serviceCidr
    ? [{ dst: serviceCidr, via: '', dev: nodeInterface, onlink: false }]
    : [];
  if (backend === 'host-gw') {
    return {
      routes: [
        ...peers.map((p) => ({
          dst: p.podCidr,
          via: p.nodeIp,
          dev: nodeInterface,
          onlink: false,
        })),
        ...services,
      ],
      neighbours: [],
      fdb: [],
    };
  }
  const reachable = peers.filter((p) => p.vxlanMac !== undefined);
  return {
    routes: [
      ...reachable.map((p) => ({
        dst: p.podCidr,
        via: p.podNetwork,
        dev: vxlanDevice,
        onlink: true,
      })),
      ...services,
    ],
    neighbours: reachable.map((p) => ({ ip: p.podNetwork, mac: p.vxlanMac ?? '' })),
    fdb: reachable.map((p) => ({ mac: p.vxlanMac ?? '', dst: p.nodeIp })),
  };
}

/** The batches that turn `current` into `desired`. */
export interface PeerChanges {
  /** `bridge -batch`, before the routes: FDB entries the new routes rely on. */
  fdbAdd: string[];
  /** `ip -batch`: stale routes and neighbours out, missing ones in. */
  ip: string[];
  /** `bridge -batch`, after the routes: FDB entries no route uses any more. */
  fdbDelete: string[];
}

const routeKey = (r: RouteEntry): string => `${r.dst} ${r.via} ${r.dev} ${r.onlink}`;
const neighbourKey = (n: NeighbourEntry): string => `${n.ip} ${n.mac}`;
const fdbKey = (f: FdbEntry): string => `${f.mac} ${f.dst}`;

function routeLine(verb: 'replace' | 'del', r: RouteEntry): string {
  const via = r.via === '' ? '' : ` via ${r.via}`;
  return `route ${verb} ${r.dst}${via} dev ${r.dev}${r.onlink ? ' onlink' : ''} proto ${routeProtocol}`;
}

/** Pure: the commands that bring the kernel from `current` to `desired`. */
export function planPeerChanges(current: PeerProgram, desired: PeerProgram): PeerChanges {
  const diff = <T>(from: T[], to: T[], key: (item: T) => string): { gone: T[]; added: T[] } => {
    const fromKeys = new Set(from.map(key));
    const toKeys = new Set(to.map(key));
    return {
      gone: from.filter((item) => !toKeys.has(key(item))),
      added: to.filter((item) => !fromKeys.has(key(item))),
    };
  };
  const routes = diff(current.routes, desired.routes, routeKey);
  const neighbours = diff(current.neighbours, desired.neighbours, neighbourKey);
  const fdb = diff(current.fdb, desired.fdb, fdbKey);
  const wantedDsts = new Set(desired.routes.map((r) => r.dst));
  const wantedIps = new Set(desired.neighbours.map((n) => n.ip));
  return {
    fdbAdd: fdb.added.map(
      (f) => `fdb replace ${f.mac} dev ${vxlanDevice} dst ${f.dst} self permanent`,
    ),
    ip: [
      // A route replaced in place needs no delete; one whose destination goes does.
      ...routes.gone.filter((r) => !wantedDsts.has(r.dst)).map((r) => routeLine('del', r)),
      ...neighbours.gone
        .filter((n) => !wantedIps.has(n.ip))
        .map((n) => `neigh del ${n.ip} dev ${vxlanDevice}`),
      ...neighbours.added.map(
        (n) => `neigh replace ${n.ip} lladdr ${n.mac} dev ${vxlanDevice} nud permanent`,
      ),
      ...routes.added.map((r) => routeLine('replace', r)),
    ],
    fdbDelete: fdb.gone.map((f) => `fdb del ${f.mac} dev ${vxlanDevice} dst ${f.dst} self`),
  };
}

interface ShownRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
}

/** What the kernel holds now of the agent's routes, neighbours and FDB entries. */
export async function readPeerProgram(withVxlan: boolean): Promise<PeerProgram> {
  const shown = JSON.parse(
    (
      await runAsync('ip', [
        '-j',
        '-4',
        'route',
        'show',
        'table',
        'main',
        'proto',
        String(routeProtocol),
      ])
    ).stdout,
  ) as ShownRoute[];
  const routes = shown.map((r) => ({
    dst: r.dst,
    via: r.gateway ?? '',
    dev: r.dev ?? '',
    onlink: r.flags?.includes('onlink') ?? false,
  }));
  if (!withVxlan) return { routes, neighbours: [], fdb: [] };
  const neigh = JSON.parse(
    (await runAsync('ip', ['-j', 'neigh', 'show', 'dev', vxlanDevice, 'nud', 'permanent'])).stdout,
  ) as { dst: string; lladdr?: string }[];
  const fdb = JSON.parse(
    (await runAsync('bridge', ['-j', 'fdb', 'show', 'dev', vxlanDevice])).stdout,
  ) as { mac: string; dst?: string; flags?: string[] }[];
  return {
    routes,
    neighbours: neigh.flatMap((n) => (n.lladdr ? [{ ip: n.dst, mac: n.lladdr }] : [])),
    fdb: fdb.flatMap((f) =>
      f.dst && f.mac !== '00:00:00:00:00:00' ? [{ mac: f.mac, dst: f.dst }] : [],
    ),
  };
}

async function batch(tool: 'ip' | 'bridge', lines: readonly string[]): Promise<void> {
  if (lines.length > 0) await runAsync(tool, ['-batch', '-'], lines.join('\n') + '\n');
}

/** Brings the kernel to `desired`; returns the commands it ran (empty when nothing changed). */
export async function applyPeerProgram(backend: Backend, desired: PeerProgram): Promise<string[]> {
  const current = await readPeerProgram(backend === 'vxlan');
  const changes = planPeerChanges(current, desired);
  await batch('bridge', changes.fdbAdd);
  await batch('ip', changes.ip);
  await batch('bridge', changes.fdbDelete);
  return [...changes.fdbAdd, ...changes.ip, ...changes.fdbDelete];
}
