// Round-robin allocation over a real AllocationStore in a temporary
// directory, as host-local allocates (backend/allocator/allocator.go) and
// stores (backend/disk/backend.go): one file per address holding
// `containerID\r\nifname`, `last_reserved_ip.<range set>` and a `lock`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import { allocateFromSet, freeCount, rangeFor } from '../../src/ipam/allocator.js';
import { type AddressRange, parseIpamConfig } from '../../src/ipam/config.js';
import { AllocationStore, ownerKey, withStore } from '../../src/ipam/store.js';
import { type IpAddress, formatIp, parseIp } from '../../src/netaddr/ip.js';

const network = 'podnet';

function rangeSet(...ranges: Record<string, string>[]): AddressRange[] {
  const set = parseIpamConfig({ type: 'strata-ipam', ranges: [ranges] }).rangeSets[0];
  assert.ok(set);
  return set;
}

function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  assert.ok(parsed);
  return parsed;
}

/** Runs `fn` with an open store in a fresh temporary data directory, removed afterwards. */
async function inStore(
  fn: (store: AllocationStore, dir: string) => void | Promise<void>,
): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-alloc-'));
  try {
    await withStore(dataDir, network, (store) => fn(store, join(dataDir, network)));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Allocates for container `c<n>`/eth0 with no address requested; returns the address as text. */
function next(store: AllocationStore, set: AddressRange[], n: number, index = 0): string {
  return formatIp(allocateFromSet(store, set, index, `c${n}`, 'eth0', undefined, []).ip);
}

function addressFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => parseIp(name) !== undefined)
    .sort();
}

describe('allocateFromSet: round robin', () => {
  it("gives .2 first when the gateway is .1, and writes host-local's files", async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      const got = allocateFromSet(store, set, 0, 'c0ffee', 'eth0', undefined, []);
      assert.equal(formatIp(got.ip), '10.1.0.2');
      assert.equal(got.range, set[0]);
      assert.equal(readFileSync(join(dir, '10.1.0.2'), 'utf8'), 'c0ffee\r\neth0');
      assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), '10.1.0.2');
      assert.ok(existsSync(join(dir, 'lock')));
      assert.deepEqual(readdirSync(dir).sort(), ['10.1.0.2', 'last_reserved_ip.0', 'lock']);
    });
  });

  it('hands out consecutive addresses to consecutive attachments', async () => {
    await inStore((store) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      assert.deepEqual(
        [1, 2, 3, 4].map((n) => next(store, set, n)),
        ['10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5'],
      );
    });
  });

  // host-local GetIter: start from last_reserved_ip.<n> + 1.
  it('continues after last_reserved_ip.<n>, per range set', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      writeFileSync(join(dir, 'last_reserved_ip.0'), '10.1.0.100');
      writeFileSync(join(dir, 'last_reserved_ip.1'), '10.1.0.200');
      assert.equal(next(store, set, 1, 0), '10.1.0.101');
      assert.equal(next(store, set, 2, 1), '10.1.0.201');
      assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), '10.1.0.101');
      assert.equal(readFileSync(join(dir, 'last_reserved_ip.1'), 'utf8'), '10.1.0.201');
    });
  });

  it('does not reuse a released address until it comes round again', async () => {
    await inStore((store) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      next(store, set, 1);
      next(store, set, 2);
      assert.deepEqual(
        store.release('c1', 'eth0').map((a) => a.name),
        ['10.1.0.2'],
      );
      assert.equal(next(store, set, 3), '10.1.0.4');
    });
  });

  it('wraps around to rangeStart after rangeEnd, skipping the gateway', async () => {
    await inStore((store, dir) => {
      // 10.1.0.0/29: gateway .1, range .1-.6.
      const set = rangeSet({ subnet: '10.1.0.0/29' });
      writeFileSync(join(dir, 'last_reserved_ip.0'), '10.1.0.6');
      assert.equal(next(store, set, 1), '10.1.0.2');
    });
  });

  it('wraps around to the addresses freed behind the cursor', async () => {
    await inStore((store) => {
      const set = rangeSet({ subnet: '10.1.0.0/29' });
      assert.deepEqual(
        [1, 2, 3, 4, 5].map((n) => next(store, set, n)),
        ['10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6'],
      );
      store.release('c3', 'eth0');
      assert.equal(next(store, set, 6), '10.1.0.4');
    });
  });

  it('skips taken addresses on the way, such as files another host-local wrote', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      writeFileSync(join(dir, '10.1.0.2'), 'other\r\neth0');
      writeFileSync(join(dir, '10.1.0.3'), 'older-format-id');
      assert.equal(next(store, set, 1), '10.1.0.4');
    });
  });

  it('skips a gateway in the middle of the range', async () => {
    await inStore((store) => {
      const set = rangeSet({
        subnet: '10.1.0.0/24',
        rangeStart: '10.1.0.10',
        gateway: '10.1.0.11',
      });
      assert.deepEqual(
        [1, 2].map((n) => next(store, set, n)),
        ['10.1.0.10', '10.1.0.12'],
      );
    });
  });

  it('walks the ranges of a set in order and wraps to the first', async () => {
    await inStore((store) => {
      const set = rangeSet(
        { subnet: '10.1.0.0/30' }, // .1 gateway, .2
        { subnet: '10.2.0.0/29', rangeEnd: '10.2.0.3' }, // .1 gateway, .2-.3
      );
      assert.deepEqual(
        [1, 2, 3].map((n) => next(store, set, n)),
        ['10.1.0.2', '10.2.0.2', '10.2.0.3'],
      );
      store.release('c1', 'eth0');
      assert.equal(next(store, set, 4), '10.1.0.2');
    });
  });

  // "We might get a last reserved IP that is wrong if the range indexes
  // changed. This is not critical, we just lose round-robin this one time."
  it('starts at rangeStart when last_reserved_ip is outside the set', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24', rangeStart: '10.1.0.50' });
      writeFileSync(join(dir, 'last_reserved_ip.0'), '192.168.0.9');
      assert.equal(next(store, set, 1), '10.1.0.50');
      writeFileSync(join(dir, 'last_reserved_ip.0'), 'garbage');
      assert.equal(next(store, set, 2), '10.1.0.51');
    });
  });

  it('allocates IPv6 and names the file in canonical form', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: 'fd00:0:0:1::/64' });
      assert.equal(next(store, set, 1), 'fd00:0:0:1::2');
      assert.equal(readFileSync(join(dir, 'fd00:0:0:1::2'), 'utf8'), 'c1\r\neth0');
      assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), 'fd00:0:0:1::2');
    });
  });

  it('throws code 11 naming the range set when every address is taken', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/29' });
      for (let n = 1; n <= 5; n++) next(store, set, n);
      const before = readdirSync(dir).sort();
      assert.throws(() => next(store, set, 6), {
        name: 'CniError',
        code: CniErrorCode.TryAgainLater,
        message: /no IP addresses available in range set 10\.1\.0\.1-10\.1\.0\.6/,
      });
      assert.deepEqual(readdirSync(dir).sort(), before);
    });
  });

  // host-local walks the range and takes any address without a file; a file
  // left on what is now the gateway (the gateway was moved in the
  // configuration while a pod held the address) must not hide a free address.
  it('finds the last free address when a leftover file sits on the gateway', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/29' }); // range .1-.6, gateway .1
      for (const last of ['1', '2', '3', '4', '5'])
        writeFileSync(join(dir, `10.1.0.${last}`), `old${last}\r\neth0`);
      assert.equal(next(store, set, 1), '10.1.0.6');
    });
  });

  it('throws code 11 when the only address left is the gateway', async () => {
    await inStore((store) => {
      const set = rangeSet({ subnet: '10.1.0.0/30' });
      next(store, set, 1);
      assert.throws(() => next(store, set, 2), { code: CniErrorCode.TryAgainLater });
    });
  });
});

describe('allocateFromSet: requested addresses', () => {
  it('honours a requested address in the range, and moves the cursor there', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      const got = allocateFromSet(store, set, 0, 'c1', 'eth0', ip('10.1.0.50'), []);
      assert.equal(formatIp(got.ip), '10.1.0.50');
      assert.equal(readFileSync(join(dir, '10.1.0.50'), 'utf8'), 'c1\r\neth0');
      assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), '10.1.0.50');
      assert.equal(next(store, set, 2), '10.1.0.51');
    });
  });

  // host-local: "requested ip %s is subnet's gateway"
  it('refuses the gateway with code 7', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      assert.throws(() => allocateFromSet(store, set, 0, 'c1', 'eth0', ip('10.1.0.1'), []), {
        code: CniErrorCode.InvalidNetworkConfig,
        message: /10\.1\.0\.1 is the gateway/,
      });
      assert.deepEqual(addressFiles(dir), []);
    });
  });

  // host-local RangeSet.RangeFor: the address must lie between rangeStart and rangeEnd.
  const outside: { requested: string; why: string }[] = [
    { requested: '10.9.0.5', why: 'another subnet' },
    { requested: '10.1.0.5', why: 'in the subnet, before rangeStart' },
    { requested: '10.1.0.250', why: 'in the subnet, after rangeEnd' },
    { requested: '10.1.0.255', why: 'the broadcast address' },
    { requested: 'fd00::5', why: 'the other family' },
  ];
  for (const c of outside) {
    it(`refuses ${c.requested} (${c.why}) with code 7`, async () => {
      await inStore((store, dir) => {
        const set = rangeSet({
          subnet: '10.1.0.0/24',
          rangeStart: '10.1.0.10',
          rangeEnd: '10.1.0.200',
        });
        assert.throws(() => allocateFromSet(store, set, 0, 'c1', 'eth0', ip(c.requested), []), {
          code: CniErrorCode.InvalidNetworkConfig,
          message: new RegExp(
            `requested IP address ${c.requested.replace(/\./g, '\\.')} is not in range set 10\\.1\\.0\\.10-10\\.1\\.0\\.200`,
          ),
        });
        assert.deepEqual(addressFiles(dir), []);
      });
    });
  }

  it('refuses a requested address another attachment holds, with code 11', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      allocateFromSet(store, set, 0, 'c1', 'eth0', ip('10.1.0.7'), []);
      assert.throws(() => allocateFromSet(store, set, 0, 'c2', 'eth0', ip('10.1.0.7'), []), {
        code: CniErrorCode.TryAgainLater,
        message: /10\.1\.0\.7 is not available/,
      });
      // The first owner's claim is untouched.
      assert.equal(readFileSync(join(dir, '10.1.0.7'), 'utf8'), 'c1\r\neth0');
    });
  });

  // CNI spec: a second ADD for one attachment needs a DEL in between; host-local
  // refuses "%s has been allocated to %s, duplicate allocation is not allowed".
  it('refuses a second allocation for the same container and ifname with code 7', async () => {
    await inStore((store, dir) => {
      const set = rangeSet({ subnet: '10.1.0.0/24' });
      next(store, set, 1);
      const existing = store.allocationsOf('c1', 'eth0').map((a) => a.ip);
      assert.throws(() => allocateFromSet(store, set, 0, 'c1', 'eth0', undefined, existing), {
        code: CniErrorCode.InvalidNetworkConfig,
        message: /10\.1\.0\.2 has been allocated to c1\/eth0 already; duplicate allocation/,
      });
      assert.deepEqual(addressFiles(dir), ['10.1.0.2']);
    });
  });

  it('allows the same container a second interface, and an address in another range set', async () => {
    await inStore((store) => {
      const v4 = rangeSet({ subnet: '10.1.0.0/24' });
      const v6 = rangeSet({ subnet: 'fd00::/64' });
      next(store, v4, 1);
      assert.equal(
        formatIp(allocateFromSet(store, v4, 0, 'c1', 'net1', undefined, []).ip),
        '10.1.0.3',
      );
      const existing = store.allocationsOf('c1', 'eth0').map((a) => a.ip);
      assert.equal(
        formatIp(allocateFromSet(store, v6, 1, 'c1', 'eth0', undefined, existing).ip),
        'fd00::2',
      );
    });
  });
});

describe('AllocationStore', () => {
  it('lists owners, reading host-local files with and without the ifname line', async () => {
    await inStore((store, dir) => {
      writeFileSync(join(dir, '10.1.0.2'), 'c1\r\neth0');
      writeFileSync(join(dir, '10.1.0.3'), 'c2\r\nnet1\n');
      writeFileSync(join(dir, '10.1.0.4'), 'c3');
      writeFileSync(join(dir, 'fd00::2'), 'c1\r\neth0');
      const owners = store
        .allocations()
        .map((a) => `${a.name}=${a.containerId}/${a.ifname}`)
        .sort();
      assert.deepEqual(owners, [
        '10.1.0.2=c1/eth0',
        '10.1.0.3=c2/net1',
        '10.1.0.4=c3/',
        'fd00::2=c1/eth0',
      ]);
      // Files of the older format hold the container ID alone and match any ifname.
      assert.deepEqual(
        store.allocationsOf('c3', 'eth0').map((a) => a.name),
        ['10.1.0.4'],
      );
      assert.deepEqual(
        store
          .allocationsOf('c1', 'eth0')
          .map((a) => a.name)
          .sort(),
        ['10.1.0.2', 'fd00::2'],
      );
      assert.deepEqual(store.allocationsOf('c1', 'net1'), []);
    });
  });

  it("releases only the attachment's own files", async () => {
    await inStore((store, dir) => {
      writeFileSync(join(dir, '10.1.0.2'), 'c1\r\neth0');
      writeFileSync(join(dir, '10.1.0.3'), 'c1\r\nnet1');
      writeFileSync(join(dir, '10.1.0.4'), 'c2\r\neth0');
      assert.deepEqual(
        store.release('c1', 'eth0').map((a) => a.name),
        ['10.1.0.2'],
      );
      assert.deepEqual(addressFiles(dir), ['10.1.0.3', '10.1.0.4']);
      assert.deepEqual(store.release('c1', 'eth0'), []);
    });
  });

  it('reserve is exclusive: a second claim on a taken address is false', async () => {
    await inStore((store, dir) => {
      assert.equal(store.reserve(ip('10.1.0.9'), 'c1', 'eth0', 0), true);
      assert.equal(store.reserve(ip('10.1.0.9'), 'c2', 'eth0', 3), false);
      assert.equal(readFileSync(join(dir, '10.1.0.9'), 'utf8'), 'c1\r\neth0');
      assert.equal(existsSync(join(dir, 'last_reserved_ip.3')), false);
    });
  });

  it('trims the container ID, as host-local does', () => {
    assert.equal(ownerKey(' c1 \n', 'eth0'), 'c1\r\neth0');
  });

  it('creates <dataDir>/<network> and its lock on open, and can be reopened after close', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'strata-alloc-'));
    try {
      const store = new AllocationStore(join(dataDir, 'nested'), network);
      await store.open();
      assert.equal(store.dir, join(dataDir, 'nested', network));
      assert.ok(existsSync(join(store.dir, 'lock')));
      store.close();
      store.close();
      // The lock was released: a second store on the directory opens without waiting.
      await withStore(join(dataDir, 'nested'), network, (again) => {
        assert.deepEqual(again.allocations(), []);
      });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  // host-local's disk backend takes flock(LOCK_EX) on <dataDir>/<network>/lock;
  // while strata holds the store, another process's flock on that file must fail.
  it('holds an flock on the lock file that other processes see, until close', async (t) => {
    if (spawnSync('flock', ['--version']).status !== 0) {
      t.skip('no flock(1) on this machine');
      return;
    }
    await inStore((store, dir) => {
      const probe = (): number | null =>
        spawnSync('flock', ['--nonblock', join(dir, 'lock'), 'true']).status;
      assert.equal(probe(), 1);
      store.close();
      assert.equal(probe(), 0);
    });
  });

  it('reads nothing from a directory that is gone', () => {
    const store = new AllocationStore('/nonexistent-strata-test', network);
    assert.deepEqual(store.allocations(), []);
    assert.equal(store.lastReserved(0), undefined);
  });

  it('ignores files that are not addresses', async () => {
    await inStore((store, dir) => {
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'notes'), 'hi');
      writeFileSync(join(dir, '10.1.0.2'), 'c1\r\neth0');
      assert.deepEqual(
        store.allocations().map((a) => a.name),
        ['10.1.0.2'],
      );
    });
  });
});

describe('freeCount and rangeFor', () => {
  it('counts the range less the gateway and the allocated addresses', () => {
    const set = rangeSet({ subnet: '10.1.0.0/24' });
    assert.equal(freeCount(set, []), 253n);
    assert.equal(freeCount(set, [ip('10.1.0.2'), ip('10.9.0.2')]), 252n);
    // A gateway outside rangeStart..rangeEnd takes nothing from the range.
    assert.equal(
      freeCount(
        rangeSet({ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.19' }),
        [],
      ),
      10n,
    );
  });

  it('finds the range of a set that holds an address', () => {
    const set = rangeSet({ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24' });
    assert.equal(rangeFor(set, ip('10.2.0.5')), set[1]);
    assert.equal(rangeFor(set, ip('10.2.0.255')), undefined);
    assert.equal(rangeFor(set, ip('10.3.0.5')), undefined);
  });
});
