// strata-cni's routedPods (docs/cni.md): pods on one bridge reach each other
// through the node's IP layer, not at L2, so the node's own hooks see and can
// capture their traffic without br_netfilter. Each case runs the real plugin
// in a node namespace, with br_netfilter off there as the agent runs it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { Lab, inNetns, isRoot, link, sh, strataHostVeths } from '../support/netns.js';
import { bridgeConf, callPlugin, mustCall } from '../support/plugin.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

interface AddResult {
  interfaces: { name: string; mac?: string; sandbox?: string }[];
  ips: { address: string; gateway?: string }[];
}

interface Pod {
  netns: string;
  containerId: string;
  result: AddResult;
  /** The pod's addresses without prefix length: `v4`, and `v6` when dual-stack. */
  v4: string;
  v6?: string;
}

function bare(address: string): string {
  return address.split('/')[0] ?? address;
}

/** Runs python3 in a namespace to completion; throws unless it exits 0. */
function python(netns: string, code: string, args: string[] = []): string {
  const out = inNetns(netns, ['python3', '-c', code, ...args], { timeoutMs: 20_000 });
  if (out.status !== 0) throw new Error(`python3 in ${netns} failed: ${out.stderr}`);
  return out.stdout;
}

/**
 * Starts python3 in a namespace and resolves once it prints `ready`; `done`
 * gives every later line of output when it exits.
 */
async function startPython(
  lab: Lab,
  netns: string,
  code: string,
  args: string[] = [],
): Promise<{ done: Promise<string[]> }> {
  const child = spawn('ip', ['netns', 'exec', netns, 'python3', '-c', code, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  lab.onCleanup(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<string[]>((resolve, reject) => {
    child.on('exit', (code) => {
      if (code === 0) resolve(out.split('\n').filter((l) => l !== '' && l !== 'ready'));
      else reject(new Error(`python3 in ${netns} exited ${code}: ${err}`));
    });
  });
  // Failing before `ready` is reported below; `done` is only awaited after it.
  done.catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) resolve();
    });
    child.on('exit', () => {
      reject(new Error(`python3 in ${netns} exited before ready: ${err}`));
    });
  });
  return { done };
}

/** Receives one UDP datagram and prints the TTL (hop limit) it arrived with. */
const receiveTtl = `
import socket, sys
v6 = ':' in sys.argv[1]
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
else:
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, 'IP_RECVTTL', 12), 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print('ready', flush=True)
data, anc, flags, peer = s.recvmsg(64, socket.CMSG_SPACE(4))
for level, kind, value in anc:
    print(int.from_bytes(value[:4], sys.byteorder), flush=True)
`;

/** Sends a few datagrams (the first may wait for neighbour resolution). */
const sendUdp = `
import socket, sys, time
v6 = ':' in sys.argv[1]
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
`;

/** A transparent listener (IP_TRANSPARENT = 19): prints the peer and the local address of one connection. */
const transparentListener = `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_IP, 19, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(8)
s.settimeout(10)
print('ready', flush=True)
c, peer = s.accept()
local = c.getsockname()
print(f'{peer[0]} {local[0]}:{local[1]}', flush=True)
c.sendall(b'captured\\n')
c.close()
`;

/** The TTL (IPv4) or hop limit (IPv6) a datagram from `from` arrives at `to` with. */
async function ttlBetween(lab: Lab, from: Pod, to: Pod, family: 4 | 6): Promise<number> {
  const address = family === 4 ? to.v4 : to.v6;
  assert.ok(address);
  const port = String(40000 + Math.floor(Math.random() * 10000));
  const receiver = await startPython(lab, to.netns, receiveTtl, [
    family === 4 ? '0.0.0.0' : '::',
    port,
  ]);
  python(from.netns, sendUdp, [address, port]);
  const [ttl] = await receiver.done;
  return Number(ttl);
}

/** One TCP connection with ncat, returning what the server said, or undefined on failure. */
function connect(netns: string, address: string, port: number): string | undefined {
  const out = inNetns(netns, ['ncat', '-w', '3', '--recv-only', address, String(port)], {
    timeoutMs: 10_000,
  });
  return out.status === 0 ? out.stdout.trim() : undefined;
}

/** A counter in a table of the node namespace, read back. */
function counterPackets(node: string, table: string, chain: string): number {
  const json = JSON.parse(
    sh('ip', ['netns', 'exec', node, 'nft', '-j', 'list', 'chain', 'inet', table, chain]),
  ) as {
    nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
  };
  let packets = 0;
  for (const item of json.nftables) {
    for (const e of item.rule?.expr ?? []) packets += e.counter?.packets ?? 0;
  }
  return packets;
}

function sysctl(netns: string, key: string): string {
  return sh('ip', ['netns', 'exec', netns, 'sysctl', '-n', key]).trim();
}

void describe(
  'strata-cni routedPods: pods on one bridge are routed through the node',
  { skip },
  () => {
    const lab = new Lab();
    after(() => {
      lab.cleanup();
    });

    /** A node with br_netfilter off, as the agent runs it, and two pods attached with `extra`. */
    function world(
      subnets: string[],
      extra: Record<string, unknown>,
    ): { node: string; bridge: string; conf: Record<string, unknown>; a: Pod; b: Pod } {
      const node = lab.netns('strn');
      sh('ip', [
        'netns',
        'exec',
        node,
        'sysctl',
        '-q',
        '-w',
        'net.bridge.bridge-nf-call-iptables=0',
      ]);
      sh('ip', [
        'netns',
        'exec',
        node,
        'sysctl',
        '-q',
        '-w',
        'net.bridge.bridge-nf-call-ip6tables=0',
      ]);
      const bridge = 'cni0';
      const conf = bridgeConf({
        name: 'routed',
        bridge,
        dataDir: lab.dir(),
        subnets,
        extra: { isDefaultGateway: true, ...extra },
      });
      const attach = (id: string): Pod => {
        const netns = lab.netns('strp');
        const out = mustCall({
          command: 'ADD',
          node,
          pod: netns,
          containerId: id,
          ifname: 'eth0',
          conf,
        });
        const result = out.json as unknown as AddResult;
        const v4 = result.ips.find((ip) => !ip.address.includes(':'));
        const v6 = result.ips.find((ip) => ip.address.includes(':'));
        assert.ok(v4);
        const pod: Pod = { netns, containerId: id, result, v4: bare(v4.address) };
        if (v6) pod.v6 = bare(v6.address);
        return pod;
      };
      return { node, bridge, conf, a: attach('pod-a'), b: attach('pod-b') };
    }

    void it('isolates each host veth and turns proxy ARP on at the bridge; CHECK agrees', () => {
      const w = world(['10.98.1.0/24'], { routedPods: true });
      const veths = strataHostVeths(w.node);
      assert.equal(veths.length, 2);
      for (const veth of veths) {
        const detail = JSON.parse(
          sh('ip', ['-n', w.node, '-j', '-d', 'link', 'show', 'dev', veth.ifname]),
        ) as {
          linkinfo: { info_slave_data: { isolated: boolean } };
        }[];
        assert.equal(detail[0]?.linkinfo.info_slave_data.isolated, true, veth.ifname);
      }
      assert.equal(sysctl(w.node, `net.ipv4.conf.${w.bridge}.proxy_arp`), '1');
      assert.equal(sysctl(w.node, `net.ipv4.conf.${w.bridge}.proxy_arp_pvlan`), '1');
      assert.equal(sysctl(w.node, `net.ipv4.neigh.${w.bridge}.proxy_delay`), '0');

      const check = (): ReturnType<typeof callPlugin> =>
        callPlugin({
          command: 'CHECK',
          node: w.node,
          pod: w.a.netns,
          containerId: w.a.containerId,
          ifname: 'eth0',
          conf: { ...w.conf, prevResult: w.a.result },
        });
      const ok = check();
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      const hostA = w.a.result.interfaces[1]?.name;
      assert.ok(hostA);
      sh('ip', ['-n', w.node, 'link', 'set', hostA, 'type', 'bridge_slave', 'isolated', 'off']);
      const open = check();
      assert.notEqual(open.status, 0);
      assert.match(open.stdout, /is not isolated on bridge cni0/);
      sh('ip', ['-n', w.node, 'link', 'set', hostA, 'type', 'bridge_slave', 'isolated', 'on']);
      sh('ip', [
        'netns',
        'exec',
        w.node,
        'sysctl',
        '-q',
        '-w',
        `net.ipv4.conf.${w.bridge}.proxy_arp_pvlan=0`,
      ]);
      const noProxy = check();
      assert.notEqual(noProxy.status, 0);
      assert.match(noProxy.stdout, /proxy_arp_pvlan is 0, expected 1/);
    });

    void it('pods reach each other through the node: forward hook, TTL 63, the bridge answering ARP', async () => {
      const w = world(['10.98.2.0/24'], { routedPods: true });
      sh(
        'ip',
        ['netns', 'exec', w.node, 'nft', '-f', '-'],
        `table inet routedtest {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip saddr ${w.a.v4} ip daddr ${w.b.v4} counter
	}
}
`,
      );
      lab.serveTcp(w.b.netns, w.b.v4, 8080, 'pod-b');
      assert.equal(connect(w.a.netns, w.b.v4, 8080), 'pod-b');
      assert.ok(
        counterPackets(w.node, 'routedtest', 'forward') >= 3,
        'A → B crossed the forward hook',
      );
      assert.equal(await ttlBetween(lab, w.a, w.b, 4), 63);
      assert.equal(await ttlBetween(lab, w.b, w.a, 4), 63);
      // A knows B by the bridge's MAC: the node answered A's ARP request for B.
      const bridgeMac = link(w.node, w.bridge)?.address;
      const neigh = sh('ip', ['-n', w.a.netns, 'neigh', 'show', w.b.v4]);
      assert.ok(bridgeMac && neigh.includes(bridgeMac), `${neigh} should name ${bridgeMac}`);

      // The node and its pods reach each other as before.
      const gateway = w.a.result.ips[0]?.gateway;
      assert.ok(gateway);
      lab.serveTcp(w.node, gateway, 8081, 'node');
      assert.equal(connect(w.a.netns, gateway, 8081), 'node');
      assert.equal(connect(w.node, w.b.v4, 8080), 'pod-b');
    });

    void it('without routedPods the pods stay bridged, as the reference plugin leaves them', async () => {
      const w = world(['10.98.3.0/24'], {});
      for (const veth of strataHostVeths(w.node)) {
        const detail = JSON.parse(
          sh('ip', ['-n', w.node, '-j', '-d', 'link', 'show', 'dev', veth.ifname]),
        ) as {
          linkinfo: { info_slave_data: { isolated: boolean } };
        }[];
        assert.equal(detail[0]?.linkinfo.info_slave_data.isolated, false);
      }
      assert.equal(sysctl(w.node, `net.ipv4.conf.${w.bridge}.proxy_arp_pvlan`), '0');
      assert.equal(sysctl(w.node, `net.ipv4.conf.${w.bridge}.proxy_arp`), '0');
      assert.equal(await ttlBetween(lab, w.a, w.b, 4), 64);
    });

    // docs/mesh.md, capture experiment 3, with the real plugin: tproxy in the node's prerouting
    // takes a pod's connection to another pod on the same bridge, original destination intact.
    void it('a tproxy rule in the node captures a pod-to-pod connection with its original destination', async () => {
      const w = world(['10.98.4.0/24'], { routedPods: true });
      lab.serveTcp(w.b.netns, w.b.v4, 8080, 'pod-b');
      sh(
        'ip',
        ['netns', 'exec', w.node, 'nft', '-f', '-'],
        `table inet capturetest {
	chain prerouting {
		type filter hook prerouting priority dstnat + 15; policy accept;
		ip saddr ${w.a.v4} ip daddr ${w.b.v4} tcp dport 8080 counter tproxy ip to :15001 meta mark set 0x539 accept
	}
}
`,
      );
      sh('ip', ['-n', w.node, 'rule', 'add', 'fwmark', '0x539', 'lookup', '133']);
      sh('ip', ['-n', w.node, 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133']);
      const proxy = await startPython(lab, w.node, transparentListener, ['15001']);
      assert.equal(connect(w.a.netns, w.b.v4, 8080), 'captured');
      const [accepted] = await proxy.done;
      assert.equal(accepted, `${w.a.v4} ${w.b.v4}:8080`);
      assert.ok(counterPackets(w.node, 'capturetest', 'prerouting') >= 1);
      // Without the rule, the same connection reaches pod B.
      sh('ip', ['netns', 'exec', w.node, 'nft', 'delete', 'table', 'inet', 'capturetest']);
      assert.equal(connect(w.a.netns, w.b.v4, 8080), 'pod-b');
    });

    void it('IPv6: the subnet is routed via the gateway, redirects are not taken, hop limit 63', async () => {
      const w = world(['10.98.5.0/24', 'fd00:98:5::/64'], { routedPods: true });
      assert.ok(w.a.v6 && w.b.v6);
      const routes = sh('ip', ['-n', w.a.netns, '-6', 'route', 'show', 'dev', 'eth0']);
      assert.match(routes, /^fd00:98:5::1 /m);
      assert.match(routes, /^fd00:98:5::\/64 via fd00:98:5::1 /m);
      assert.equal(sysctl(w.node, `net.ipv6.conf.${w.bridge}.accept_dad`), '0');
      const ok = callPlugin({
        command: 'CHECK',
        node: w.node,
        pod: w.a.netns,
        containerId: w.a.containerId,
        ifname: 'eth0',
        conf: { ...w.conf, prevResult: w.a.result },
      });
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);

      assert.equal(await ttlBetween(lab, w.a, w.b, 6), 63);
      // The node sends ICMPv6 redirects for flows it forwards back out of the bridge; a pod
      // that took one would look for the other pod on the link, where its isolated port cannot
      // reach it (in the lab its neighbour entry ended FAILED and connections timed out). The
      // pods take none; connections in both directions keep working.
      lab.serveTcp(w.b.netns, w.b.v6, 8080, 'pod-b');
      lab.serveTcp(w.a.netns, w.a.v6, 8080, 'pod-a');
      for (let i = 0; i < 4; i++) {
        assert.equal(connect(w.a.netns, w.b.v6, 8080), 'pod-b', `A → B, connection ${i + 1}`);
        assert.equal(connect(w.b.netns, w.a.v6, 8080), 'pod-a', `B → A, connection ${i + 1}`);
      }
      assert.equal(sysctl(w.a.netns, 'net.ipv6.conf.eth0.accept_redirects'), '0');
      const bridgeMac = link(w.node, w.bridge)?.address;
      const neigh = spawnSync('ip', ['-n', w.a.netns, '-6', 'neigh', 'show', w.b.v6], {
        encoding: 'utf8',
      });
      assert.ok(
        !neigh.stdout.includes('lladdr') || (bridgeMac && neigh.stdout.includes(bridgeMac)),
      );
    });
  },
);
