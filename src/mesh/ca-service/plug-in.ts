/**
 * An operator's plug-in CA installed into a cluster's CA directory, as
 * Istio takes it from the `cacerts` secret: the four files, copied as they
 * are, the key readable by root alone. Whether they fit together is the
 * CA's check when the controller opens them (src/mesh/identity/ca-files.ts);
 * this module only copies, so `strata up` does not load the X.509 library.
 */
import { access, chmod, copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Istio's plug-in CA files, and the mode each gets. */
export const plugInCaFiles = [
  { name: 'ca-cert.pem', mode: 0o644 },
  { name: 'ca-key.pem', mode: 0o600 },
  { name: 'root-cert.pem', mode: 0o644 },
  { name: 'cert-chain.pem', mode: 0o644 },
] as const;

export class PlugInCaError extends Error {
  override readonly name = 'PlugInCaError';
  readonly code = 'STRATA_ERR_PLUGIN_CA';
}

/** Throws PlugInCaError naming every plug-in file missing from `source`. */
export async function checkPlugInCa(source: string): Promise<void> {
  const missing: string[] = [];
  for (const { name } of plugInCaFiles) {
    try {
      await access(join(source, name));
    } catch {
      missing.push(name);
    }
  }
  if (missing.length > 0) {
    throw new PlugInCaError(
      `--plugin-ca ${source} lacks ${missing.join(', ')}: a plug-in CA is the four files of Istio's cacerts (${plugInCaFiles.map((f) => f.name).join(', ')})`,
    );
  }
}

/** Copies the four files from `source` into `caDir` (made 0700), ca-key.pem with mode 0600. */
export async function installPlugInCa(source: string, caDir: string): Promise<void> {
  await checkPlugInCa(source);
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  await chmod(caDir, 0o700);
  for (const { name, mode } of plugInCaFiles) {
    const target = join(caDir, name);
    await copyFile(join(source, name), target);
    await chmod(target, mode);
  }
}
