// Where the agent publishes pod namespace names (src/agent/netns.ts): the propagation of
// /run/netns read from mountinfo, which tells a private mount namespace (`ip netns exec`:
// a slave, `master:N`) from the host's (`shared:N`).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { netnsDir, podNetnsName, propagationOf } from '../../src/agent/netns.js';

const host = [
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
  '42 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw',
  '43 42 0:4 net:[4026532177] /run/netns/node-1 rw shared:2 - nsfs nsfs rw',
].join('\n');

const ipNetnsExec = [
  '100 81 254:0 / / rw,relatime - ext4 /dev/vda rw',
  '245 100 254:0 /run/netns /run/netns rw,relatime master:1 - ext4 /dev/vda rw',
  '246 245 0:4 net:[4026532177] /run/netns/node-1 rw master:2 - nsfs nsfs rw',
].join('\n');

describe('propagationOf', () => {
  it('reads shared and master peer groups of /run/netns', () => {
    assert.equal(netnsDir, '/run/netns');
    assert.deepEqual(propagationOf(host), { shared: 1 });
    assert.deepEqual(propagationOf(ipNetnsExec), { master: 1 });
    assert.deepEqual(
      propagationOf('50 1 0:5 /run/netns /run/netns rw shared:7 master:3 - ext4 /dev/vda rw'),
      { shared: 7, master: 3 },
    );
  });

  it('takes the topmost mount, a private one, and none', () => {
    const stacked = [
      '42 27 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw',
      '60 42 254:0 /run/netns /run/netns rw - ext4 /dev/vda rw',
    ].join('\n');
    assert.deepEqual(propagationOf(stacked), {});
    assert.equal(propagationOf('27 1 254:0 / / rw,relatime - ext4 /dev/vda rw'), undefined);
  });

  it('unescapes mount points and never reads optional fields past the separator', () => {
    const line = '70 1 0:9 / /tmp/a\\040b rw master:4 - tmpfs shared:9 rw';
    assert.deepEqual(propagationOf(line, '/tmp/a b'), { master: 4 });
  });

  it('names pod namespaces after the cluster and the uid', () => {
    assert.equal(podNetnsName('default', '0123456789abcdef-rest'), 'strata-default-0123456789ab');
  });
});
