// nfnetlink_log encoding and decoding (linux/netfilter/nfnetlink_log.h): the
// config request must be the exact bytes nfulnl_recv_config parses, and a
// packet message must come apart into the logged packet's addresses and ports.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  NLM_F_ACK,
  NLM_F_REQUEST,
  cstring,
  decodeMessages,
  encodeMessage,
} from '../../src/kernel/netlink/message.js';
import {
  NFLOG_CONFIG,
  NFLOG_PACKET,
  NFULA_IFINDEX_INDEV,
  NFULA_IFINDEX_OUTDEV,
  NFULA_PACKET_HDR,
  NFULA_PAYLOAD,
  NFULA_PREFIX,
  NFULA_TIMESTAMP,
  decodeNflogPacket,
  nfgenmsg,
  nflogBindRequest,
  nflogUnbindRequest,
  parseIpPacket,
} from '../../src/kernel/netlink/nflog.js';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function request(r: ReturnType<typeof nflogBindRequest>, seq: number): Buffer {
  return encodeMessage(r.type, NLM_F_REQUEST | NLM_F_ACK, seq, r.body, r.attributes);
}

describe('nflog config requests', () => {
  it('binds a group and sets copy-packet mode, range and flush timeout in one message', () => {
    const bind = nflogBindRequest(7, { copyRange: 128, flushTimeout: 10 });
    assert.equal(bind.type, NFLOG_CONFIG);
    const bytes = request(bind, 1);
    assert.deepEqual(
      bytes,
      hex(`
        30000000 0104 0500 01000000 00000000
        00 00 0007
        0500 0100 01 000000
        0a00 0200 00000080 02 00 0000
        0800 0400 0000000a
      `),
    );
  });

  it('defaults to a 128-byte copy and leaves timeout and threshold to the kernel', () => {
    const bytes = request(nflogBindRequest(0x1234), 9);
    assert.deepEqual(
      bytes,
      hex(`
        28000000 0104 0500 09000000 00000000
        00 00 1234
        0500 0100 01 000000
        0a00 0200 00000080 02 00 0000
      `),
    );
  });

  it('writes the queue threshold as a big-endian u32', () => {
    const r = nflogBindRequest(1, { queueThreshold: 0x01020304 });
    assert.deepEqual(r.attributes.at(-1), { type: 5, value: hex('01020304') });
  });

  it('unbinds with NFULNL_CFG_CMD_UNBIND', () => {
    assert.deepEqual(
      request(nflogUnbindRequest(7), 2),
      hex('1c000000 0104 0500 02000000 00000000 00000007 0500 0100 02 000000'),
    );
  });

  it('refuses a group outside 0-65535', () => {
    assert.throws(() => nflogBindRequest(65536), /0-65535: got 65536/);
    assert.throws(() => nflogBindRequest(-1), RangeError);
    assert.throws(() => nflogBindRequest(1.5), RangeError);
  });
});

const ipv4Tcp = hex(`
  45 00 003c 1c46 4000 40 06 0000 0a010203 0a010204
  c350 0050 00000000 00000000 5002 ffff 0000 0000
`);

const ipv6Udp = hex(`
  60000000 0008 11 40
  fd000000000000000000000000000001
  fd000000000000000000000000000002
  d431 0035 0008 0000
`);

function be32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

function packetMessage(family: number, group: number, prefix: string, payload: Buffer): Buffer {
  return encodeMessage(NFLOG_PACKET, 0, 0, nfgenmsg(family, group), [
    { type: NFULA_PACKET_HDR, value: hex(family === 2 ? '0800 03 00' : '86dd 03 00') },
    { type: NFULA_IFINDEX_INDEV, value: be32(3) },
    { type: NFULA_IFINDEX_OUTDEV, value: be32(5) },
    { type: NFULA_PREFIX, value: cstring(prefix) },
    { type: NFULA_PAYLOAD, value: payload },
  ]);
}

describe('nflog packet messages', () => {
  it('decodes group, family, prefix, interfaces and payload of an IPv4 TCP packet', () => {
    const [message] = decodeMessages(packetMessage(2, 7, 'ingress x/a', ipv4Tcp));
    assert.ok(message);
    const packet = decodeNflogPacket(message);
    assert.ok(packet);
    assert.equal(packet.group, 7);
    assert.equal(packet.family, 2);
    assert.equal(packet.prefix, 'ingress x/a');
    assert.equal(packet.inIfindex, 3);
    assert.equal(packet.outIfindex, 5);
    assert.equal(packet.time, undefined);
    assert.deepEqual(packet.payload, ipv4Tcp);
    assert.deepEqual(parseIpPacket(packet.payload), {
      family: 4,
      src: '10.1.2.3',
      dst: '10.1.2.4',
      protocol: 'tcp',
      protocolNumber: 6,
      srcPort: 50000,
      dstPort: 80,
    });
  });

  it('decodes an IPv6 UDP packet and its timestamp', () => {
    const withTimestamp = encodeMessage(NFLOG_PACKET, 0, 0, nfgenmsg(10, 300), [
      { type: NFULA_PREFIX, value: cstring('egress ns-1/web-0') },
      // struct nfulnl_msg_packet_timestamp: be64 seconds, be64 microseconds.
      { type: NFULA_TIMESTAMP, value: hex('000000006553f100 000000000001e240') },
      { type: NFULA_PAYLOAD, value: ipv6Udp },
    ]);
    const [message] = decodeMessages(withTimestamp);
    assert.ok(message);
    const packet = decodeNflogPacket(message);
    assert.ok(packet?.payload);
    assert.equal(packet.group, 300);
    assert.equal(packet.family, 10);
    assert.equal(packet.prefix, 'egress ns-1/web-0');
    assert.equal(packet.time?.toISOString(), '2023-11-14T22:13:20.123Z');
    assert.deepEqual(parseIpPacket(packet.payload), {
      family: 6,
      src: 'fd00::1',
      dst: 'fd00::2',
      protocol: 'udp',
      protocolNumber: 17,
      srcPort: 54321,
      dstPort: 53,
    });
  });

  it('reads every packet of a batched datagram and ignores other messages', () => {
    const done = encodeMessage(3, 2, 0, Buffer.alloc(4));
    const datagram = Buffer.concat([
      packetMessage(2, 7, 'ingress x/a', ipv4Tcp),
      packetMessage(10, 7, 'ingress x/b', ipv6Udp),
      done,
    ]);
    const packets = decodeMessages(datagram).map(decodeNflogPacket);
    assert.deepEqual(
      packets.map((p) => p?.prefix),
      ['ingress x/a', 'ingress x/b', undefined],
    );
  });

  it('has an empty prefix when the rule sets none', () => {
    const bare = encodeMessage(NFLOG_PACKET, 0, 0, nfgenmsg(2, 1), [
      { type: NFULA_PAYLOAD, value: ipv4Tcp },
    ]);
    const [message] = decodeMessages(bare);
    assert.ok(message);
    assert.equal(decodeNflogPacket(message)?.prefix, '');
  });
});

describe('IP headers of a logged packet', () => {
  it('skips IPv4 options to the ports', () => {
    // IHL 6: one 4-byte option (NOPs) before the UDP header.
    const withOptions = hex('46 00 0020 0000 0000 40 11 0000 c0a80001 c0a80002 01010101 0400 0401');
    assert.deepEqual(parseIpPacket(withOptions), {
      family: 4,
      src: '192.168.0.1',
      dst: '192.168.0.2',
      protocol: 'udp',
      protocolNumber: 17,
      srcPort: 1024,
      dstPort: 1025,
    });
  });

  it('has no ports in a later IPv4 fragment', () => {
    const later = Buffer.from(ipv4Tcp);
    later.writeUInt16BE(0x0010, 6); // fragment offset 16 (x 8 bytes)
    const headers = parseIpPacket(later);
    assert.equal(headers?.protocol, 'tcp');
    assert.equal(headers?.srcPort, undefined);
    assert.equal(headers?.dstPort, undefined);
  });

  it('has no ports when the copy ends with the IP header', () => {
    const headers = parseIpPacket(ipv4Tcp.subarray(0, 20));
    assert.equal(headers?.dst, '10.1.2.4');
    assert.equal(headers?.dstPort, undefined);
  });

  it('reads ICMP type and code', () => {
    const echo = hex('45 00 001c 0000 0000 40 01 0000 0a000001 0a000002 08 00 0000 0001 0001');
    assert.deepEqual(parseIpPacket(echo), {
      family: 4,
      src: '10.0.0.1',
      dst: '10.0.0.2',
      protocol: 'icmp',
      protocolNumber: 1,
      icmpType: 8,
      icmpCode: 0,
    });
  });

  it('follows IPv6 hop-by-hop and fragment headers to the transport', () => {
    const chained = hex(`
      60000000 0018 00 40
      fd000000000000000000000000000001
      fd000000000000000000000000000002
      2c 00 0502 00000000
      84 00 0000 12345678
      04d2 162e 00000000
    `);
    assert.deepEqual(parseIpPacket(chained), {
      family: 6,
      src: 'fd00::1',
      dst: 'fd00::2',
      protocol: 'sctp',
      protocolNumber: 132,
      srcPort: 1234,
      dstPort: 5678,
    });
  });

  it('has no ports in a later IPv6 fragment', () => {
    const later = hex(`
      60000000 0010 2c 40
      fd000000000000000000000000000001
      fd000000000000000000000000000002
      06 00 0008 12345678
      04d2 162e 00000000
    `);
    const headers = parseIpPacket(later);
    assert.equal(headers?.protocol, 'tcp');
    assert.equal(headers?.srcPort, undefined);
  });

  it('reads ICMPv6 and names unknown protocols by number', () => {
    const ping = Buffer.concat([ipv6Udp.subarray(0, 40), hex('80 00 0000')]);
    ping[6] = 58;
    assert.equal(parseIpPacket(ping)?.protocol, 'icmpv6');
    assert.equal(parseIpPacket(ping)?.icmpType, 128);
    const other = Buffer.from(ipv4Tcp);
    other[9] = 253;
    assert.equal(parseIpPacket(other)?.protocol, '253');
  });

  it('rejects bytes that are not an IP header', () => {
    assert.equal(parseIpPacket(new Uint8Array()), undefined);
    assert.equal(parseIpPacket(ipv4Tcp.subarray(0, 19)), undefined);
    assert.equal(parseIpPacket(ipv6Udp.subarray(0, 39)), undefined);
    assert.equal(parseIpPacket(hex('55000000')), undefined);
    assert.equal(
      parseIpPacket(hex('44 00 0014 0000 0000 40 06 0000 0a000001 0a000002')),
      undefined,
    );
  });
});
