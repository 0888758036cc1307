/**
 * The cluster DNS server: one UDP socket and one TCP listener on the same
 * address and port, answering from a zone built from a DnsRecordSource
 * (records.ts, resolve.ts), forwarding what is not the cluster's to the
 * configured upstreams (forward.ts).
 *
 * Speed: the zone is rebuilt once per burst of changes (coalesced to the
 * next turn of the event loop, or on the next query, whichever comes
 * first), and every response is kept encoded under the bytes of the query
 * that decide it (cache.ts); the cache is emptied when the zone changes.
 * A hit costs a key, a map lookup and one copy of the response with the
 * query's id written in.
 *
 * TCP follows RFC 7766: two-byte length framing, any number of queries per
 * connection, answered as they complete, and an idle timeout.
 */
import { type RemoteInfo, type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Server as TcpServer, type Socket, createServer } from 'node:net';
import { AnswerCache, cacheKey, withQueryId } from './cache.js';
import { type DnsEndpoint, formatEndpoint } from './endpoints.js';
import { Forwarder, defaultForwardTimeoutMs } from './forward.js';
import { type DnsZone, ZoneIndex, normalizeDomain } from './records.js';
import { type Transport, errorResponse, rcodes, resolveQuery } from './resolve.js';
import type { DnsRecordSource } from './source.js';

export interface DnsServerOptions {
  /** Where the Services and EndpointSlices come from. */
  source: DnsRecordSource;
  /** The cluster domain; `cluster.local` when unset. */
  domain?: string;
  /** Address and port for both UDP and TCP; 0.0.0.0:53 when unset. Port 0 picks a free one. */
  listen?: { host: string; port: number };
  /** Seconds, of every record and of negative answers; 5 when unset. */
  ttl?: number;
  /** Where names outside the zone go, tried in order; none: they are REFUSED. */
  upstreams?: readonly DnsEndpoint[];
  /** How long each upstream has to answer; 2 s. */
  forwardTimeoutMs?: number;
  /** A TCP connection without a query for this long is closed; 10 s. */
  tcpIdleTimeoutMs?: number;
  /** Responses kept encoded; 50,000. */
  cacheEntries?: number;
  /** Errors worth a line (at most one a second); stderr when unset. */
  log?: (line: string) => void;
}

/** Where the server listens, once it does. */
export interface DnsServerAddress {
  host: string;
  udpPort: number;
  tcpPort: number;
}

/** Counters since the server started. */
export interface DnsStats {
  udpQueries: number;
  tcpQueries: number;
  /** Answered from the response cache. */
  cacheHits: number;
  /** Sent to an upstream. */
  forwarded: number;
  /** Forwarded queries no upstream answered (each got SERVFAIL). */
  forwardFailures: number;
  /** Ignored: shorter than a header, or a response. */
  dropped: number;
  /** Responses by rcode (index 0 NOERROR, 3 NXDOMAIN, ...). */
  responses: number[];
  /** UDP responses sent with TC set. */
  truncated: number;
}

export const defaultDomain = 'cluster.local';
export const defaultTtl = 5;
const defaultTcpIdleMs = 10_000;
/** Large enough for bursts of thousands of queries; the kernel caps it at rmem_max/wmem_max. */
const udpBufferBytes = 4 * 1024 * 1024;
const rcodeNames = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

function stderrLog(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** Writes one response on a TCP connection, with its two-byte length in front. */
function writeFramed(socket: Socket, response: Buffer): void {
  if (socket.destroyed) return;
  const framed = Buffer.allocUnsafe(response.length + 2);
  framed.writeUInt16BE(response.length, 0);
  response.copy(framed, 2);
  socket.write(framed);
}

export class DnsServer {
  readonly domain: string;
  readonly ttl: number;
  readonly #source: DnsRecordSource;
  readonly #listen: { host: string; port: number };
  readonly #forwarder: Forwarder | undefined;
  readonly #tcpIdleMs: number;
  readonly #cache: AnswerCache;
  readonly #log: (line: string) => void;
  readonly #unsubscribe: () => void;
  readonly #connections = new Set<Socket>();
  readonly #index: ZoneIndex;
  #zone: DnsZone;
  #dirty = true;
  #rebuildScheduled = false;
  #udp: UdpSocket | undefined;
  #tcp: TcpServer | undefined;
  #address: DnsServerAddress | undefined;
  #lastLogAt = 0;
  #stats: DnsStats = {
    udpQueries: 0,
    tcpQueries: 0,
    cacheHits: 0,
    forwarded: 0,
    forwardFailures: 0,
    dropped: 0,
    responses: new Array<number>(16).fill(0),
    truncated: 0,
  };

  constructor(options: DnsServerOptions) {
    this.domain = normalizeDomain(options.domain ?? defaultDomain);
    this.ttl = options.ttl ?? defaultTtl;
    this.#source = options.source;
    this.#listen = options.listen ?? { host: '0.0.0.0', port: 53 };
    const upstreams = options.upstreams ?? [];
    this.#forwarder =
      upstreams.length > 0
        ? new Forwarder(upstreams, options.forwardTimeoutMs ?? defaultForwardTimeoutMs)
        : undefined;
    this.#tcpIdleMs = options.tcpIdleTimeoutMs ?? defaultTcpIdleMs;
    this.#cache = new AnswerCache(options.cacheEntries);
    this.#log = options.log ?? stderrLog;
    this.#index = new ZoneIndex(this.domain);
    this.#zone = {
      records: this.#index,
      ttl: this.ttl,
      serial: Math.floor(Date.now() / 1000),
      synced: false,
    };
    this.#unsubscribe = this.#source.subscribe(() => {
      this.#changed();
    });
    this.#rebuild();
  }

  /** Binds UDP and TCP on the same port (for port 0, one free for both). */
  async listen(): Promise<DnsServerAddress> {
    if (this.#address) return this.#address;
    const { host, port } = this.#listen;
    for (let attempt = 1; ; attempt++) {
      const udp = await this.#bindUdp(host, port);
      const udpPort = udp.address().port;
      try {
        const tcp = await this.#listenTcp(host, udpPort);
        this.#udp = udp;
        this.#tcp = tcp;
        this.#address = { host, udpPort, tcpPort: udpPort };
        return this.#address;
      } catch (error) {
        udp.close();
        const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        // An ephemeral UDP port may be taken for TCP: pick another pair.
        if (port !== 0 || !inUse || attempt >= 20) throw error;
      }
    }
  }

  /** Where the server listens; undefined before listen(). */
  get address(): DnsServerAddress | undefined {
    return this.#address;
  }

  /** Whether the source has its first complete listing (`/ready`). */
  ready(): boolean {
    return this.#source.synced();
  }

  /** The zone answers come from now. */
  zone(): DnsZone {
    if (this.#dirty) this.#rebuild();
    return this.#zone;
  }

  stats(): DnsStats {
    return { ...this.#stats, responses: [...this.#stats.responses] };
  }

  /** The counters in Prometheus' text format, under CoreDNS's metric names. */
  metrics(): string {
    const stats = this.#stats;
    const server = `dns://${this.#address ? formatEndpoint({ host: this.#address.host, port: this.#address.udpPort }) : ''}`;
    const family = this.#listen.host.includes(':') ? '2' : '1';
    const lines = [
      '# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.',
      '# TYPE coredns_dns_requests_total counter',
      `coredns_dns_requests_total{server="${server}",zone=".",proto="udp",family="${family}"} ${stats.udpQueries}`,
      `coredns_dns_requests_total{server="${server}",zone=".",proto="tcp",family="${family}"} ${stats.tcpQueries}`,
      '# HELP coredns_dns_responses_total Counter of response status codes.',
      '# TYPE coredns_dns_responses_total counter',
      ...stats.responses.flatMap((count, rcode) =>
        count === 0
          ? []
          : [
              `coredns_dns_responses_total{server="${server}",zone=".",rcode="${rcodeNames[rcode] ?? String(rcode)}"} ${count}`,
            ],
      ),
      '# HELP coredns_cache_hits_total The count of cache hits.',
      '# TYPE coredns_cache_hits_total counter',
      `coredns_cache_hits_total{server="${server}"} ${stats.cacheHits}`,
      '# HELP coredns_cache_entries The number of elements in the cache.',
      '# TYPE coredns_cache_entries gauge',
      `coredns_cache_entries{server="${server}"} ${this.#cache.size}`,
      '# HELP strata_dns_forwarded_total Queries sent to an upstream.',
      '# TYPE strata_dns_forwarded_total counter',
      `strata_dns_forwarded_total{server="${server}"} ${stats.forwarded}`,
      '# HELP strata_dns_forward_failures_total Forwarded queries no upstream answered.',
      '# TYPE strata_dns_forward_failures_total counter',
      `strata_dns_forward_failures_total{server="${server}"} ${stats.forwardFailures}`,
    ];
    return `${lines.join('\n')}\n`;
  }

  /** Stops listening, closes every connection and stops reading the source. */
  async close(): Promise<void> {
    this.#unsubscribe();
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = undefined;
    this.#tcp = undefined;
    this.#address = undefined;
    for (const socket of this.#connections) socket.destroy();
    this.#connections.clear();
    await Promise.all([
      udp &&
        new Promise<void>((resolve) => {
          udp.close(() => {
            resolve();
          });
        }),
      tcp &&
        new Promise<void>((resolve) => {
          tcp.close(() => {
            resolve();
          });
        }),
    ]);
  }

  #changed(): void {
    this.#dirty = true;
    if (this.#rebuildScheduled) return;
    this.#rebuildScheduled = true;
    setImmediate(() => {
      this.#rebuildScheduled = false;
      if (this.#dirty) this.#rebuild();
    });
  }

  /** The zone brought up to date with the source; the serial and the cache change only when a record did. */
  #rebuild(): void {
    this.#dirty = false;
    const synced = this.#source.synced();
    const changed = this.#index.update(this.#source.objects());
    const current = this.#zone;
    if (!changed && synced === current.synced) return;
    this.#zone = {
      records: this.#index,
      ttl: this.ttl,
      serial: Math.max(current.serial + 1, Math.floor(Date.now() / 1000)),
      synced,
    };
    this.#cache.clear();
  }

  /** The response to `message`, 'forward', or undefined to send nothing. */
  #answer(message: Buffer, transport: Transport): Buffer | 'forward' | undefined {
    if (this.#dirty) this.#rebuild();
    const key = cacheKey(message, transport);
    if (key !== undefined) {
      const hit = this.#cache.get(key);
      if (hit !== undefined) {
        this.#stats.cacheHits++;
        return this.#counted(withQueryId(hit, message), transport);
      }
    }
    let resolution;
    try {
      resolution = resolveQuery(message, this.#zone, {
        transport,
        forwarding: this.#forwarder !== undefined,
      });
    } catch (error) {
      // A bug, not the client's fault: SERVFAIL, and the server keeps serving.
      this.#logLimited(`dns: cannot answer a query: ${(error as Error).message}`);
      if (message.length < 12) return undefined;
      return this.#counted(errorResponse(message, rcodes.servFail), transport);
    }
    if (resolution.action === 'drop') {
      this.#stats.dropped++;
      return undefined;
    }
    if (resolution.action === 'forward') return 'forward';
    if (key !== undefined && this.#zone.synced) this.#cache.set(key, resolution.response);
    return this.#counted(resolution.response, transport);
  }

  #counted(response: Buffer, transport: Transport): Buffer {
    const flags = response[2] ?? 0;
    const responses = this.#stats.responses;
    const rcode = (response[3] ?? 0) & 0xf;
    responses[rcode] = (responses[rcode] ?? 0) + 1;
    if (transport === 'udp' && flags & 0x02) this.#stats.truncated++;
    return response;
  }

  async #forwarded(message: Buffer, transport: Transport): Promise<Buffer> {
    this.#stats.forwarded++;
    const response = await this.#forwarder?.forward(message, transport);
    if (response) return this.#counted(response, transport);
    this.#stats.forwardFailures++;
    return this.#counted(errorResponse(message, rcodes.servFail, true), transport);
  }

  #onUdpMessage = (message: Buffer, remote: RemoteInfo): void => {
    this.#stats.udpQueries++;
    const response = this.#answer(message, 'udp');
    if (response === undefined) return;
    if (response === 'forward') {
      void this.#forwarded(message, 'udp').then((forwarded) => {
        this.#udp?.send(forwarded, remote.port, remote.address);
      });
      return;
    }
    this.#udp?.send(response, remote.port, remote.address);
  };

  #onTcpMessage(socket: Socket, message: Buffer): void {
    this.#stats.tcpQueries++;
    const response = this.#answer(message, 'tcp');
    if (response === undefined) {
      // RFC 7766 section 6.2.4 (and what BIND does): a message that cannot be read ends the connection.
      socket.destroy();
      return;
    }
    if (response === 'forward') {
      void this.#forwarded(message, 'tcp').then((forwarded) => {
        writeFramed(socket, forwarded);
      });
      return;
    }
    writeFramed(socket, response);
  }

  #onConnection = (socket: Socket): void => {
    this.#connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.#tcpIdleMs, () => {
      socket.destroy();
    });
    socket.on('close', () => this.#connections.delete(socket));
    socket.on('error', () => {
      // A reset by the client; 'close' follows.
    });
    let pending: Buffer | undefined;
    socket.on('data', (chunk: Buffer) => {
      const data = pending ? Buffer.concat([pending, chunk]) : chunk;
      let offset = 0;
      while (data.length - offset >= 2) {
        const length = data.readUInt16BE(offset);
        if (data.length - offset - 2 < length) break;
        const message = data.subarray(offset + 2, offset + 2 + length);
        offset += 2 + length;
        this.#onTcpMessage(socket, message);
        if (socket.destroyed) return;
      }
      pending = offset < data.length ? data.subarray(offset) : undefined;
    });
  };

  #bindUdp(host: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({
        type: host.includes(':') ? 'udp6' : 'udp4',
        recvBufferSize: udpBufferBytes,
        sendBufferSize: udpBufferBytes,
      });
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        socket.on('error', (error) => {
          this.#logLimited(`dns: UDP socket: ${error.message}`);
        });
        socket.on('message', this.#onUdpMessage);
        resolve(socket);
      });
    });
  }

  #listenTcp(host: string, port: number): Promise<TcpServer> {
    return new Promise((resolve, reject) => {
      const server = createServer(this.#onConnection);
      server.maxConnections = 1024;
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        server.on('error', (error) => {
          this.#logLimited(`dns: TCP listener: ${error.message}`);
        });
        resolve(server);
      });
    });
  }

  #logLimited(line: string): void {
    const now = Date.now();
    if (now - this.#lastLogAt < 1000) return;
    this.#lastLogAt = now;
    this.#log(line);
  }
}
