/**
 * Transparent TCP sockets for the mesh's node proxy, which Node cannot make
 * itself: `IP_TRANSPARENT` (and `SO_MARK`) must be set before bind(2), and
 * Node exposes neither. The socket is made with libc through koffi, set up,
 * and handed to Node by its descriptor, after which it is an ordinary
 * `net.Server` or `net.Socket`.
 *
 * - A transparent listener accepts connections that nftables `tproxy`
 *   assigned to it; each accepted socket's local address is the
 *   connection's original destination (no SO_ORIGINAL_DST needed).
 * - A transparent connection leaves from an address that is not the
 *   node's (the source pod's), so the destination sees the true source;
 *   its mark lets policy routing bring the replies back to this socket.
 *
 * Node-only (koffi); the Bun-compiled CNI plugin never loads this.
 */
import { createServer, type Server, Socket } from 'node:net';
import { type IpAddress, formatIp, ipBytes, parseIp } from '../netaddr/ip.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_MARK = 36;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;
const SOL_IPV6 = 41;
const IPV6_TRANSPARENT = 75;

interface SocketCalls {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, length: number): number;
  bind(fd: number, address: Buffer, length: number): number;
  listen(fd: number, backlog: number): number;
  close(fd: number): number;
  errno(): number;
}

let calls: Promise<SocketCalls> | undefined;
/** The calls once loaded, for the synchronous `dialTransparent`. */
let loadedCalls: SocketCalls | undefined;

async function loadCalls(): Promise<SocketCalls> {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load('libc.so.6');
  loadedCalls = {
    socket: lib.func('int socket(int, int, int)') as SocketCalls['socket'],
    setsockopt: lib.func(
      'int setsockopt(int, int, int, const void *, uint32_t)',
    ) as SocketCalls['setsockopt'],
    bind: lib.func('int bind(int, const void *, uint32_t)') as SocketCalls['bind'],
    listen: lib.func('int listen(int, int)') as SocketCalls['listen'],
    close: lib.func('int close(int)') as SocketCalls['close'],
    errno: () => koffi.errno(),
  };
  return loadedCalls;
}

/**
 * Loads what transparent sockets are made with (koffi and libc), once.
 * `listenTransparent` and `connectTransparent` do it themselves;
 * `dialTransparent`, being synchronous, needs it done first.
 */
export async function loadTransparentSockets(): Promise<void> {
  await (calls ??= loadCalls());
}

export class TransparentSocketError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(`${message} (errno ${errno})`);
    this.name = 'TransparentSocketError';
  }
}

/** A sockaddr_in or sockaddr_in6 for the address and port. */
function socketAddress(ip: IpAddress, port: number): Buffer {
  if (ip.family === 4) {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    Buffer.from(ipBytes(ip)).copy(sa, 4);
    return sa;
  }
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  Buffer.from(ipBytes(ip)).copy(sa, 8);
  return sa;
}

function int(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  return b;
}

function address(text: string): IpAddress {
  const ip = parseIp(text);
  if (!ip) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  return ip;
}

/** A non-blocking TCP socket of the family with IP_TRANSPARENT (and SO_MARK) set, bound to ip:port. */
function boundTransparentSocket(
  c: SocketCalls,
  ip: IpAddress,
  port: number,
  options: { mark?: number; reuseAddress?: boolean },
): number {
  const fd = c.socket(
    ip.family === 4 ? AF_INET : AF_INET6,
    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) throw new TransparentSocketError('cannot create a socket', c.errno());
  const fail = (what: string): never => {
    const errno = c.errno();
    c.close(fd);
    throw new TransparentSocketError(what, errno);
  };
  const one = int(1);
  const [level, name] = ip.family === 4 ? [SOL_IP, IP_TRANSPARENT] : [SOL_IPV6, IPV6_TRANSPARENT];
  if (c.setsockopt(fd, level, name, one, 4) !== 0)
    fail('cannot set IP_TRANSPARENT (needs CAP_NET_ADMIN)');
  if (options.reuseAddress && c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) !== 0) {
    fail('cannot set SO_REUSEADDR');
  }
  if (
    options.mark !== undefined &&
    c.setsockopt(fd, SOL_SOCKET, SO_MARK, int(options.mark), 4) !== 0
  ) {
    fail(`cannot set SO_MARK ${options.mark}`);
  }
  const sa = socketAddress(ip, port);
  if (c.bind(fd, sa, sa.length) !== 0) fail(`cannot bind to ${formatIp(ip)}:${port}`);
  return fd;
}

/**
 * A listening `net.Server` on host:port whose socket has IP_TRANSPARENT:
 * it accepts what nftables `tproxy` sends to that port, and each accepted
 * socket's `localAddress`/`localPort` is the original destination.
 */
export async function listenTransparent(
  host: string,
  port: number,
  onConnection: (socket: Socket) => void,
  backlog = 511,
): Promise<Server> {
  const c = await (calls ??= loadCalls());
  const fd = boundTransparentSocket(c, address(host), port, { reuseAddress: true });
  if (c.listen(fd, backlog) !== 0) {
    const errno = c.errno();
    c.close(fd);
    throw new TransparentSocketError(`cannot listen on ${host}:${port}`, errno);
  }
  // No Nagle on what it accepts: a proxy's small writes (a request, an
  // answer) must not wait for the peer's delayed ACK of the previous one.
  const server = createServer({ noDelay: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export interface TransparentConnectOptions {
  /** The address the connection leaves from: another host's (the source pod's). */
  source: string;
  /** 0 (the default) lets the kernel pick a port. */
  sourcePort?: number;
  host: string;
  port: number;
  /** SO_MARK, for policy routing of the replies back to this socket. */
  mark?: number;
}

/**
 * A TCP connection to host:port that leaves from `source`, an address the
 * node does not own (IP_TRANSPARENT). Resolves once connected.
 */
export async function connectTransparent(options: TransparentConnectOptions): Promise<Socket> {
  await loadTransparentSockets();
  const socket = dialTransparent(options);
  return new Promise<Socket>((resolve, reject) => {
    const failed = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      resolve(socket);
    });
  });
}

/**
 * The same connection, returned at once while it is still connecting (for
 * `createConnection`-style callers such as an HTTP/2 session's TLS socket):
 * a refusal shows as the socket's 'error'. Call `loadTransparentSockets`
 * first; the socket itself is made synchronously.
 */
export function dialTransparent(options: TransparentConnectOptions): Socket {
  const c = loadedCalls;
  if (c === undefined) {
    throw new Error('dialTransparent: call loadTransparentSockets() first');
  }
  const source = address(options.source);
  const destination = address(options.host);
  if (source.family !== destination.family) {
    throw new TypeError(`${options.source} and ${options.host} are of different families`);
  }
  const fd = boundTransparentSocket(c, source, options.sourcePort ?? 0, {
    ...(options.mark === undefined ? {} : { mark: options.mark }),
  });
  const socket = new Socket({ fd, readable: true, writable: true });
  socket.setNoDelay(true);
  socket.connect({ host: options.host, port: options.port });
  return socket;
}

/** For tests: whether this process may make transparent sockets (CAP_NET_ADMIN). */
export function transparentSocketsPossible(): boolean {
  return process.getuid?.() === 0;
}
