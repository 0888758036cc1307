// strata's own release version, and the CNI spec versions it speaks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import {
  compareVersions,
  currentVersion,
  isSupportedVersion,
  requireSupportedVersion,
  supportedVersions,
  versionAtLeast,
} from '../../src/cni/version.js';
import { strataVersion } from '../../src/version.js';

describe('strataVersion', () => {
  it("equals package.json's version", () => {
    // Compiled to dist/test/unit/, so the repository root is three levels up.
    const pkg = JSON.parse(
      readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    assert.equal(strataVersion, pkg.version);
  });
});

describe('CNI spec versions', () => {
  it('speaks every version from 0.3.0 to 1.1.0, and 1.1.0 is current', () => {
    assert.deepEqual([...supportedVersions], ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    assert.equal(currentVersion, '1.1.0');
  });

  it('does not speak 0.1.0, 0.2.0 or a future 2.0.0', () => {
    for (const v of ['0.1.0', '0.2.0', '2.0.0', '1.1', ''])
      assert.equal(isSupportedVersion(v), false);
  });

  // CNI spec 1.1.0, "Error": code 1 is "Incompatible CNI version".
  it('refuses an unsupported cniVersion with code 1, listing what it supports', () => {
    assert.throws(() => requireSupportedVersion('0.2.0'), {
      name: 'CniError',
      code: CniErrorCode.IncompatibleVersion,
      message: /"0\.2\.0".*0\.3\.0 0\.3\.1 0\.4\.0 1\.0\.0 1\.1\.0/,
    });
  });

  // A configuration without cniVersion is invalid (code 7), not incompatible.
  for (const value of [undefined, '', 1, null]) {
    it(`refuses a missing or non-string cniVersion (${JSON.stringify(value)}) with code 7`, () => {
      assert.throws(() => requireSupportedVersion(value), {
        code: CniErrorCode.InvalidNetworkConfig,
        message: /cniVersion must be set/,
      });
    });
  }

  it('returns a supported version unchanged', () => {
    assert.equal(requireSupportedVersion('0.4.0'), '0.4.0');
  });

  const ordering: { a: string; b: string; sign: number }[] = [
    { a: '1.0.0', b: '0.4.0', sign: 1 },
    { a: '0.4.0', b: '1.0.0', sign: -1 },
    { a: '0.3.1', b: '0.3.0', sign: 1 },
    { a: '1.1.0', b: '1.1.0', sign: 0 },
    { a: '0.10.0', b: '0.9.0', sign: 1 },
  ];
  for (const c of ordering) {
    it(`compareVersions(${c.a}, ${c.b}) has sign ${c.sign}, numerically not as text`, () => {
      assert.equal(Math.sign(compareVersions(c.a, c.b)), c.sign);
    });
  }

  it('versionAtLeast', () => {
    assert.equal(versionAtLeast('0.4.0', '0.4.0'), true);
    assert.equal(versionAtLeast('1.0.0', '0.4.0'), true);
    assert.equal(versionAtLeast('0.3.1', '0.4.0'), false);
  });
});
