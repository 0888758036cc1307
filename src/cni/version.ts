import { CniError, CniErrorCode } from './errors.js';

/** The spec versions this plugin speaks, oldest first (CNI spec 1.1.0, "Version"). */
export const supportedVersions = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof supportedVersions)[number];
export const currentVersion: CniVersion = '1.1.0';

export function isSupportedVersion(version: string): version is CniVersion {
  return (supportedVersions as readonly string[]).includes(version);
}

/** Throws the spec's code 1 unless the configuration's cniVersion is one we speak. */
export function requireSupportedVersion(version: unknown): CniVersion {
  if (typeof version !== 'string' || version === '') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'cniVersion must be set to a version string, for example "1.0.0"',
    );
  }
  if (!isSupportedVersion(version)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `incompatible CNI versions: config is "${version}", plugin supports [${supportedVersions.join(' ')}]`,
    );
  }
  return version;
}

/** Compares two versions of the form major.minor.patch. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** True when `version` is at least `minimum`. */
export function versionAtLeast(version: string, minimum: string): boolean {
  return compareVersions(version, minimum) >= 0;
}
