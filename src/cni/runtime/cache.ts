/**
 * The result cache, in libcni's on-disk format so tools that read
 * /var/lib/cni/results keep working: `<cacheDir>/results/<network>-<containerID>-<ifname>`
 * holds a `cniCacheV1` object with the attachment's parameters, the list it
 * was added with and the final result. The spec requires the runtime to keep
 * the result of ADD for CHECK and DEL (spec 1.1.0 section 3, "Adding an
 * attachment"); GC finds stale attachments here.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CniError, CniErrorCode } from '../errors.js';
import { type CniResult, decodeResult } from '../result.js';

const cacheKind = 'cniCacheV1';

/** An attachment as the cache remembers it (libcni NetworkAttachment). */
export interface CachedAttachment {
  containerId: string;
  ifname: string;
  network: string;
  netns: string;
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
  /** The network configuration list the attachment was added with, as JSON text. */
  config: string;
  /** The final result of ADD, as the plugin chain returned it. */
  result: Record<string, unknown>;
}

/** The attachment parameters the cache is keyed by. */
export interface CacheKey {
  containerId: string;
  ifname: string;
}

/** libcni getCacheFilePath. */
export function cacheFilePath(cacheDir: string, network: string, key: CacheKey): string {
  return join(cacheDir, 'results', `${network}-${key.containerId}-${key.ifname}`);
}

/** `<file>.tmp`: where a result is written before it is renamed into place. */
function temporaryPath(file: string): string {
  return `${file}.tmp`;
}

/**
 * Stores the final result of a successful ADD (written whole: a crash leaves
 * the old file or the new one). The temporary file is named after the
 * attachment alone, so one a crash left behind is overwritten by its next
 * ADD or removed by its DEL, never kept forever.
 */
export async function cacheAdd(cacheDir: string, attachment: CachedAttachment): Promise<void> {
  const file = cacheFilePath(cacheDir, attachment.network, attachment);
  const body = {
    kind: cacheKind,
    containerId: attachment.containerId,
    // Go marshals libcni's []byte config as base64.
    config: Buffer.from(attachment.config, 'utf8').toString('base64'),
    ifName: attachment.ifname,
    networkName: attachment.network,
    ...(attachment.netns ? { netns: attachment.netns } : {}),
    ...(attachment.args.length > 0 ? { cniArgs: attachment.args } : {}),
    ...(Object.keys(attachment.capabilityArgs).length > 0
      ? { capabilityArgs: attachment.capabilityArgs }
      : {}),
    result: attachment.result,
  };
  await mkdir(join(cacheDir, 'results'), { recursive: true, mode: 0o700 });
  const temporary = temporaryPath(file);
  await writeFile(temporary, JSON.stringify(body), { mode: 0o600 });
  await rename(temporary, file);
}

/** Forgets an attachment (and a write of it a crash interrupted); already gone is fine. */
export async function cacheDel(cacheDir: string, network: string, key: CacheKey): Promise<void> {
  const file = cacheFilePath(cacheDir, network, key);
  await rm(file, { force: true });
  await rm(temporaryPath(file), { force: true });
}

function decodeAttachment(text: string): CachedAttachment | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (raw.kind !== cacheKind) return undefined;
  const text64 = typeof raw.config === 'string' ? raw.config : '';
  return {
    containerId: typeof raw.containerId === 'string' ? raw.containerId : '',
    ifname: typeof raw.ifName === 'string' ? raw.ifName : '',
    network: typeof raw.networkName === 'string' ? raw.networkName : '',
    netns: typeof raw.netns === 'string' ? raw.netns : '',
    args: Array.isArray(raw.cniArgs) ? (raw.cniArgs as [string, string][]) : [],
    capabilityArgs:
      typeof raw.capabilityArgs === 'object' && raw.capabilityArgs !== null
        ? (raw.capabilityArgs as Record<string, unknown>)
        : {},
    config: Buffer.from(text64, 'base64').toString('utf8'),
    result:
      typeof raw.result === 'object' && raw.result !== null
        ? (raw.result as Record<string, unknown>)
        : {},
  };
}

/**
 * The cached result of an attachment, undefined when none is cached. A file
 * that is not cniCacheV1 is read as a bare result, the format before libcni
 * 0.8 (getLegacyCachedResult). Throws when the file is there but unreadable.
 */
export async function getCachedResult(
  cacheDir: string,
  network: string,
  key: CacheKey,
): Promise<CniResult | undefined> {
  const file = cacheFilePath(cacheDir, network, key);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const attachment = decodeAttachment(text);
  if (attachment) return decodeResult(attachment.result, `the cached result in ${file}`);
  let legacy: unknown;
  try {
    legacy = JSON.parse(text);
  } catch (error) {
    throw new CniError(
      CniErrorCode.DecodingFailure,
      `cannot decode the cached result in ${file}: ${(error as Error).message}`,
    );
  }
  return decodeResult(legacy, `the cached result in ${file}`);
}

/** Every cached attachment, optionally of one container (libcni GetCachedAttachments). */
export async function getCachedAttachments(
  cacheDir: string,
  containerId?: string,
): Promise<CachedAttachment[]> {
  const dir = join(cacheDir, 'results');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: CachedAttachment[] = [];
  for (const name of names.sort()) {
    if (name.endsWith('.tmp')) continue;
    let text: string;
    try {
      text = await readFile(join(dir, name), 'utf8');
    } catch {
      continue;
    }
    const attachment = decodeAttachment(text);
    if (!attachment || attachment.ifname === '' || attachment.network === '') continue;
    if (containerId !== undefined && attachment.containerId !== containerId) continue;
    out.push(attachment);
  }
  return out;
}
