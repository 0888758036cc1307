// Transparent sockets (src/kernel/transparent.ts) in the data path the mesh's
// node proxy will use (docs/mesh.md): pods on a bridge with isolated ports and
// proxy ARP, so they reach each other through the node's IP layer; nftables
// `tproxy` hands pod A's connection to the proxy's transparent listener, whose
// accepted socket carries the original destination; the proxy connects to pod B
// from A's own address, and B's replies find their way back to the proxy by the
// connection mark and a local route. B sees A's address; A sees B answer.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Lab, inNetns, sh } from '../support/netns.js';
import { routedLab } from '../support/routed-lab.js';

const root = process.getuid?.() === 0;
const proxyScript = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'support',
  'transparent-proxy.js',
);

describe('transparent proxying in routed pod mode', { skip: !root && 'needs root' }, () => {
  const lab = new Lab();
  let node = '';
  let a = '';
  let b = '';
  before(() => {
    const made = routedLab(lab, 'tp', '10.250.0.0/24', { a: '10.250.0.2', b: '10.250.0.3' });
    node = made.node;
    a = made.pods.a;
    b = made.pods.b;
    // Replies to the proxy's transparent connections (ct mark 0x539) and tproxy'd packets
    // (mark 0x111) are delivered locally; the proxy's own packets (0x539) route normally.
    sh('ip', ['-n', node, 'rule', 'add', 'fwmark', '0x111', 'lookup', '133']);
    sh('ip', ['-n', node, 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133']);
    sh(
      'ip',
      ['netns', 'exec', node, 'nft', '-f', '-'],
      `
      table inet capture {
        chain prerouting {
          type filter hook prerouting priority dstnat + 15; policy accept;
          ct mark 0x539 meta mark set 0x111 accept
          ip saddr 10.250.0.2 meta l4proto tcp tproxy ip to :15001 meta mark set 0x111 accept
        }
        chain output {
          type filter hook output priority mangle; policy accept;
          meta mark 0x539 ct mark set 0x539
        }
      }`,
    );
    // B answers with the address it sees the connection come from (ncat's NCAT_REMOTE_ADDR).
    lab.serveTcp(b, '0.0.0.0', 8080, '$NCAT_REMOTE_ADDR');
  });
  after(() => {
    lab.cleanup();
  });

  it('captures A’s connection with its original destination and reaches B from A’s address', async () => {
    const proxy = spawn('ip', ['netns', 'exec', node, process.execPath, proxyScript], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let buffered = '';
    proxy.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
    });
    try {
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => l.includes('listening')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const answer = inNetns(a, ['ncat', '--recv-only', '-w', '3', '10.250.0.3', '8080'], {
        timeoutMs: 5000,
      });
      // B saw the connection come from A's own address, though the node's proxy opened it.
      assert.equal(answer.stdout.trim(), '10.250.0.2', answer.stderr);
      while (!lines.some((l) => l.includes('captured')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const captured = lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.captured);
      assert.deepEqual(captured?.captured, {
        source: '10.250.0.2',
        original: { address: '10.250.0.3', port: 8080 },
      });
    } finally {
      proxy.kill('SIGTERM');
    }
  });
});
