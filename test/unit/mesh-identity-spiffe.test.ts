// SPIFFE IDs in Istio's form (src/mesh/identity/spiffe.ts): formatting,
// parsing, and the strict refusals the SPIFFE ID specification asks of a
// verifier (standards/SPIFFE-ID.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdentityError } from '../../src/mesh/identity/errors.js';
import {
  formatSpiffeId,
  parseSpiffeId,
  sameSpiffeId,
  type SpiffeId,
} from '../../src/mesh/identity/spiffe.js';

describe('formatSpiffeId and parseSpiffeId', () => {
  it('write and read back spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    const ids: SpiffeId[] = [
      { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'default' },
      { trustDomain: 'prod.example.com', namespace: 'shop-1', serviceAccount: 'web_v2.api' },
      { trustDomain: 'td', namespace: 'N', serviceAccount: 'Sa' },
    ];
    for (const id of ids) {
      const uri = formatSpiffeId(id);
      assert.equal(uri, `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`);
      assert.deepEqual(parseSpiffeId(uri), id);
    }
    assert.equal(
      formatSpiffeId({
        trustDomain: 'cluster.local',
        namespace: 'bookinfo',
        serviceAccount: 'reviews',
      }),
      'spiffe://cluster.local/ns/bookinfo/sa/reviews',
    );
  });

  it('refuses anything but the exact form', () => {
    const refused: [string, string][] = [
      ['another scheme', 'https://cluster.local/ns/a/sa/b'],
      ['an upper-case scheme', 'SPIFFE://cluster.local/ns/a/sa/b'],
      ['no scheme', 'cluster.local/ns/a/sa/b'],
      ['an upper-case trust domain', 'spiffe://Cluster.Local/ns/a/sa/b'],
      ['a port', 'spiffe://cluster.local:443/ns/a/sa/b'],
      ['user info', 'spiffe://me@cluster.local/ns/a/sa/b'],
      ['an empty trust domain', 'spiffe:///ns/a/sa/b'],
      ['an empty namespace', 'spiffe://cluster.local/ns//sa/b'],
      ['an empty service account', 'spiffe://cluster.local/ns/a/sa/'],
      ['an extra segment', 'spiffe://cluster.local/ns/a/sa/b/c'],
      ['a trailing slash', 'spiffe://cluster.local/ns/a/sa/b/'],
      ['a missing segment', 'spiffe://cluster.local/ns/a/sa'],
      ['only a trust domain', 'spiffe://cluster.local'],
      ['segments swapped', 'spiffe://cluster.local/sa/b/ns/a'],
      ['other keywords', 'spiffe://cluster.local/namespace/a/sa/b'],
      ['a query', 'spiffe://cluster.local/ns/a/sa/b?x=1'],
      ['a fragment', 'spiffe://cluster.local/ns/a/sa/b#x'],
      ['percent-encoding', 'spiffe://cluster.local/ns/a%2Fb/sa/c'],
      ['a dot segment', 'spiffe://cluster.local/ns/../sa/b'],
      ['a space', 'spiffe://cluster.local/ns/a b/sa/c'],
      ['a path that is too long', `spiffe://cluster.local/ns/a/sa/${'x'.repeat(2048)}`],
    ];
    for (const [what, uri] of refused) {
      assert.equal(parseSpiffeId(uri), undefined, `${what}: ${uri}`);
    }
  });

  it('will not write an ID it would refuse to read, and says which part is wrong', () => {
    const cases: [Partial<SpiffeId>, RegExp][] = [
      [{ trustDomain: 'Cluster.Local' }, /trustDomain must be lowercase.*"Cluster\.Local"/],
      [{ trustDomain: '' }, /trustDomain must not be empty/],
      [{ namespace: '' }, /namespace must not be empty/],
      [{ serviceAccount: 'a/b' }, /serviceAccount must be letters.*"a\/b"/],
      [{ namespace: '..' }, /namespace must not be "\." or "\.\."/],
    ];
    for (const [change, message] of cases) {
      const id = { trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b', ...change };
      assert.throws(
        () => formatSpiffeId(id),
        (error: unknown) =>
          error instanceof IdentityError &&
          error.code === 'STRATA_ERR_SPIFFE_ID' &&
          message.test(error.message),
      );
    }
  });
});

describe('sameSpiffeId', () => {
  it('compares every part', () => {
    const a = { trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b' };
    assert.equal(sameSpiffeId(a, { ...a }), true);
    assert.equal(sameSpiffeId(a, { ...a, trustDomain: 'other.local' }), false);
    assert.equal(sameSpiffeId(a, { ...a, namespace: 'b', serviceAccount: 'a' }), false);
  });
});
