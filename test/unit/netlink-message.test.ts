// rtnetlink message encoding (linux/netlink.h, linux/rtnetlink.h): the bytes
// the plugin sends must be exactly what the kernel parses, so they are checked
// here field by field, without root.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IFA_ADDRESS,
  IFA_F_NODAD,
  IFF_UP,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  NLMSG_ERROR,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RTM_NEWLINK,
  VETH_INFO_PEER,
  cstring,
  decodeAttributes,
  decodeMessages,
  encodeAttributes,
  encodeMessage,
  errorCode,
  ifaddrmsg,
  ifinfomsg,
  macBytes,
  rtmsg,
  u32,
} from '../../src/kernel/netlink/message.js';

describe('netlink message encoding', () => {
  it('writes the 16-byte header: total length, type, flags, sequence, port 0', () => {
    const m = encodeMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 42, ifinfomsg());
    assert.equal(m.length, 16 + 16);
    assert.equal(m.readUInt32LE(0), m.length);
    assert.equal(m.readUInt16LE(4), RTM_NEWLINK);
    assert.equal(m.readUInt16LE(6), NLM_F_REQUEST | NLM_F_ACK);
    assert.equal(m.readUInt32LE(8), 42);
    assert.equal(m.readUInt32LE(12), 0);
  });

  it('pads every attribute to 4 bytes, but its length field counts only header + payload', () => {
    // "veth0\0" is 6 bytes: the attribute is 10 long, and takes 12.
    const attrs = Buffer.from(encodeAttributes([{ type: IFLA_IFNAME, value: cstring('veth0') }]));
    assert.equal(attrs.length, 12);
    assert.equal(attrs.readUInt16LE(0), 10);
    assert.equal(attrs.readUInt16LE(2), IFLA_IFNAME);
    assert.equal(attrs.subarray(4, 10).toString('latin1'), 'veth0\0');
    assert.deepEqual([...attrs.subarray(10)], [0, 0]);
  });

  it('nests attributes: the parent length covers its padded children', () => {
    const nested = Buffer.from(
      encodeAttributes([
        {
          type: IFLA_LINKINFO,
          value: [
            { type: IFLA_INFO_KIND, value: cstring('veth') },
            {
              type: IFLA_INFO_DATA,
              value: [{ type: VETH_INFO_PEER, value: Buffer.concat([ifinfomsg(), u32(7)]) }],
            },
          ],
        },
      ]),
    );
    // kind: 4 + 5 = 9 -> 12; peer: 4 + 16 + 4 = 24; data: 4 + 24 = 28; linkinfo: 4 + 12 + 28 = 44.
    assert.equal(nested.readUInt16LE(0), 44);
    assert.equal(nested.length, 44);
    const top = decodeAttributes(nested);
    const linkinfo = top.get(IFLA_LINKINFO);
    assert.ok(linkinfo);
    const inner = decodeAttributes(linkinfo);
    assert.equal(inner.get(IFLA_INFO_KIND)?.toString('latin1'), 'veth\0');
    const data = inner.get(IFLA_INFO_DATA);
    assert.ok(data);
    const peer = decodeAttributes(data).get(VETH_INFO_PEER);
    assert.equal(peer?.length, 20);
    assert.equal(peer?.readUInt32LE(16), 7);
  });

  it('lays out ifinfomsg, ifaddrmsg and rtmsg as the kernel structs', () => {
    const info = ifinfomsg({ index: 9, flags: IFF_UP, change: IFF_UP });
    assert.equal(info.length, 16);
    assert.equal(info.readInt32LE(4), 9);
    assert.equal(info.readUInt32LE(8), IFF_UP);
    assert.equal(info.readUInt32LE(12), IFF_UP);

    const addr = ifaddrmsg(10, 64, IFA_F_NODAD, 3);
    assert.deepEqual([...addr.subarray(0, 4)], [10, 64, IFA_F_NODAD, 0]);
    assert.equal(addr.readUInt32LE(4), 3);

    // A table above 255 goes in RTA_TABLE; the struct then says 0 (RT_TABLE_UNSPEC).
    assert.equal(rtmsg({ family: 2, dstLength: 24, table: 254, scope: 0 }).readUInt8(4), 254);
    assert.equal(rtmsg({ family: 2, dstLength: 24, table: 1000, scope: 0 }).readUInt8(4), 0);
  });

  it('splits a datagram into messages and reads an error code', () => {
    const ack = encodeMessage(NLMSG_ERROR, 0, 5, Buffer.alloc(20));
    const eexist = Buffer.alloc(20);
    eexist.writeInt32LE(-17, 0);
    const failure = encodeMessage(NLMSG_ERROR, 0, 6, eexist);
    const messages = decodeMessages(Buffer.concat([ack, failure]));
    assert.equal(messages.length, 2);
    assert.equal(messages[0]?.seq, 5);
    assert.equal(errorCode(messages[0]?.payload ?? Buffer.alloc(4)), 0);
    assert.equal(errorCode(messages[1]?.payload ?? Buffer.alloc(4)), -17);
  });

  it('stops at a truncated message instead of reading past the datagram', () => {
    const m = encodeMessage(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 1, ifinfomsg(), [
      { type: IFLA_IFNAME, value: cstring('eth0') },
    ]);
    assert.equal(decodeMessages(m.subarray(0, m.length - 4)).length, 0);
    assert.equal(decodeAttributes(Buffer.from([8, 0, 1, 0, 1, 2])).size, 0);
  });

  it('writes a MAC as six bytes and an address attribute as raw bytes', () => {
    assert.deepEqual([...macBytes('02:aa:0b:cc:0d:ee')], [2, 0xaa, 0x0b, 0xcc, 0x0d, 0xee]);
    const a = Buffer.from(
      encodeAttributes([{ type: IFA_ADDRESS, value: Uint8Array.of(10, 1, 0, 5) }]),
    );
    assert.equal(a.readUInt16LE(0), 8);
    assert.deepEqual([...a.subarray(4)], [10, 1, 0, 5]);
  });
});
