/**
 * Network configuration lists as a container runtime reads them (CNI spec
 * 1.1.0, section 1 "Network configuration format"), with libcni's rules
 * where the spec is loose (libcni/conf.go: NetworkConfFromBytes,
 * ConfListFromConf, NetworkPluginConfsFromFiles) and kubelet's rule for
 * choosing a network: the lexically first valid `.conf`, `.conflist` or
 * `.json` file of the directory; invalid files are skipped with a reason.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { CniError, CniErrorCode } from '../errors.js';
import { decodeJson } from '../netconf.js';
import {
  type CniVersion,
  compareVersions,
  currentVersion,
  isSupportedVersion,
  supportedVersions,
} from '../version.js';

/** One plugin configuration object of a list (spec 1.1.0, "Plugin configuration objects"). */
export interface PluginConfig {
  /** The plugin executable's name, looked up in the runtime's bin dirs. */
  type: string;
  /** The capabilities the plugin declares true (CONVENTIONS.md): portMappings, ips, mac... */
  capabilities: string[];
  /** The object as written: the runtime passes unknown fields through unchanged. */
  raw: Record<string, unknown>;
}

/** A network configuration list (spec 1.1.0, "Configuration format"). */
export interface NetworkConfigList {
  name: string;
  /** The version chosen from cniVersion and cniVersions: the highest this runtime speaks. */
  cniVersion: CniVersion;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  plugins: PluginConfig[];
  /** Where the list came from (a file path), for messages. */
  source: string;
  /** The list as JSON text, cached with each result as libcni does. */
  bytes: string;
}

/** The extensions kubelet and containerd read from the CNI config directory. */
export const configExtensions = ['.conf', '.conflist', '.json'] as const;

/** Spec 1.1.0, "Configuration format": the network name's characters. */
const networkNamePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const versionPattern = /^\d+\.\d+\.\d+$/;

function invalid(source: string, field: string, why: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, `${source}: ${field} ${why}`);
}

/** libcni's readBool: a boolean, or the strings "true"/"false" in any case. */
function readBool(raw: Record<string, unknown>, key: string, source: string): boolean {
  const value = raw[key];
  if (value === undefined) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && ['true', 'false'].includes(value.toLowerCase())) {
    return value.toLowerCase() === 'true';
  }
  throw invalid(source, key, `must be true or false, got ${JSON.stringify(value)}`);
}

function requireVersionText(value: unknown, source: string, field: string): string {
  if (typeof value !== 'string' || !versionPattern.test(value)) {
    throw invalid(
      source,
      field,
      `must be a version of the form major.minor.patch, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Chooses the version (spec 1.1.0, "Configuration format", cniVersions; libcni
 * NetworkConfFromBytes): the highest of cniVersion and cniVersions that is not
 * newer than the spec this runtime implements.
 */
export function selectVersion(raw: Record<string, unknown>, source: string): CniVersion {
  let chosen = '';
  if (raw.cniVersion !== undefined) {
    if (typeof raw.cniVersion !== 'string') {
      throw invalid(
        source,
        'cniVersion',
        `must be a string, got ${JSON.stringify(raw.cniVersion)}`,
      );
    }
    chosen = raw.cniVersion;
  }
  if (raw.cniVersions !== undefined) {
    if (!Array.isArray(raw.cniVersions)) {
      throw invalid(source, 'cniVersions', 'must be a list of version strings');
    }
    const candidates = raw.cniVersions
      .map((v: unknown, i) => requireVersionText(v, source, `cniVersions[${i}]`))
      .filter((v) => compareVersions(v, currentVersion) <= 0);
    if (chosen !== '') {
      requireVersionText(chosen, source, 'cniVersion');
      if (compareVersions(chosen, currentVersion) <= 0) candidates.push(chosen);
    }
    candidates.sort(compareVersions);
    chosen = candidates.at(-1) ?? chosen;
  }
  if (chosen === '') {
    throw invalid(
      source,
      'cniVersion',
      'is missing: set cniVersion or cniVersions, for example "1.0.0"',
    );
  }
  if (!isSupportedVersion(chosen)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `${source}: cniVersion "${chosen}" is not supported by this runtime, which speaks [${supportedVersions.join(' ')}]`,
    );
  }
  return chosen;
}

function requireNetworkName(value: unknown, source: string): string {
  if (typeof value !== 'string' || !networkNamePattern.test(value)) {
    throw invalid(
      source,
      'name',
      `must start with a letter or digit followed by letters, digits, "_", "." or "-": got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Checks one plugin configuration object the way libcni decodes it into types.PluginConf. */
export function parsePluginConfig(raw: unknown, source: string, field: string): PluginConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(source, field, 'must be an object with a "type"');
  }
  const conf = raw as Record<string, unknown>;
  const type = conf.type;
  if (typeof type !== 'string' || type === '') {
    throw invalid(source, `${field}.type`, 'must name the plugin executable');
  }
  // libcni FindInPath refuses a type with a path separator: types name files in the bin dirs.
  if (type.includes('/') || type === '.' || type === '..') {
    throw invalid(source, `${field}.type`, `must be a file name, not a path: got "${type}"`);
  }
  const capabilities: string[] = [];
  if (conf.capabilities !== undefined) {
    const caps = conf.capabilities;
    if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) {
      throw invalid(source, `${field}.capabilities`, 'must be an object of booleans');
    }
    for (const [key, value] of Object.entries(caps)) {
      if (typeof value !== 'boolean') {
        throw invalid(
          source,
          `${field}.capabilities.${key}`,
          `must be true or false, got ${JSON.stringify(value)}`,
        );
      }
      if (value) capabilities.push(key);
    }
  }
  if (conf.ipam !== undefined) {
    const ipam = conf.ipam as Record<string, unknown> | null;
    if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) {
      throw invalid(source, `${field}.ipam`, 'must be an object with a "type"');
    }
    if (ipam.type !== undefined && typeof ipam.type !== 'string') {
      throw invalid(source, `${field}.ipam.type`, 'must be a string');
    }
  }
  return { type, capabilities, raw: conf };
}

/** Parses a `.conflist` body (spec 1.1.0 section 1; libcni NetworkConfFromBytes); plugins may be empty when they load from a directory. */
export function parseNetworkConfigList(text: string, source: string): NetworkConfigList {
  const raw = decodeJson(text, source);
  if (raw.name === undefined) throw invalid(source, 'name', 'is missing');
  const name = requireNetworkName(raw.name, source);
  const cniVersion = selectVersion(raw, source);
  const loadOnlyInlinedPlugins = readBool(raw, 'loadOnlyInlinedPlugins', source);
  const list: NetworkConfigList = {
    name,
    cniVersion,
    disableCheck: readBool(raw, 'disableCheck', source),
    disableGC: readBool(raw, 'disableGC', source),
    loadOnlyInlinedPlugins,
    plugins: [],
    source,
    bytes: text,
  };
  if (raw.plugins === undefined) {
    if (loadOnlyInlinedPlugins) {
      throw invalid(source, 'plugins', 'is missing and loadOnlyInlinedPlugins is true');
    }
    return list;
  }
  if (!Array.isArray(raw.plugins)) throw invalid(source, 'plugins', 'must be a list');
  if (raw.plugins.length === 0) throw invalid(source, 'plugins', 'must not be empty');
  list.plugins = raw.plugins.map((p: unknown, i) => parsePluginConfig(p, source, `plugins[${i}]`));
  return list;
}

/** Parses a single-plugin `.conf`/`.json` and makes it a list of one (libcni ConfListFromConf). */
export function parseNetworkConfig(text: string, source: string): NetworkConfigList {
  const raw = decodeJson(text, source);
  // A .conflist saved as .conf has no top-level type: say so, as kubelet does.
  if (typeof raw.type !== 'string' || raw.type === '') {
    throw invalid(source, 'type', 'is missing (is this a .conflist?)');
  }
  const listText = JSON.stringify({ name: raw.name, cniVersion: raw.cniVersion, plugins: [raw] });
  return parseNetworkConfigList(listText, source);
}

/** Directory-aggregated plugins: `<dir>/<network name>/*.conf`, lexically (spec 1.1.0 loadOnlyInlinedPlugins; libcni NetworkPluginConfsFromFiles). */
function pluginsFromDirectory(confDir: string, network: string): PluginConfig[] {
  const dir = join(confDir, network);
  return listConfigFiles(dir, ['.conf']).map((file) =>
    parsePluginConfig(decodeJson(readFileSync(file, 'utf8'), file), file, 'plugin'),
  );
}

/** Files of `dir` with one of the extensions, sorted by name (libcni ConfFiles + sort.Strings); none when dir is absent. */
export function listConfigFiles(
  dir: string,
  extensions: readonly string[] = configExtensions,
): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names
    .filter((name) => extensions.includes(extname(name)))
    .sort()
    .map((name) => join(dir, name))
    .filter((file) => {
      try {
        return !statSync(file).isDirectory();
      } catch {
        return false;
      }
    });
}

/** Loads one configuration file: a `.conflist` (plus its plugin directory), or a single `.conf`/`.json`. */
export function loadNetworkConfigFile(file: string): NetworkConfigList {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CniError(CniErrorCode.IoFailure, `cannot read ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (extname(file) !== '.conflist') return parseNetworkConfig(text, file);
  const list = parseNetworkConfigList(text, file);
  if (!list.loadOnlyInlinedPlugins)
    list.plugins.push(...pluginsFromDirectory(dirname(file), list.name));
  if (list.plugins.length === 0) {
    throw invalid(
      file,
      'plugins',
      `is missing and ${join(dirname(file), list.name)}/ holds no *.conf`,
    );
  }
  return list;
}

export interface SkippedConfigFile {
  file: string;
  reason: string;
}

export interface DefaultNetwork {
  list: NetworkConfigList;
  /** Files before the chosen one that were not valid, with why (kubelet logs these). */
  skipped: SkippedConfigFile[];
}

/** The network kubelet would use: the lexically first valid configuration file in `dir`. */
export function loadDefaultNetwork(dir: string): DefaultNetwork {
  const skipped: SkippedConfigFile[] = [];
  for (const file of listConfigFiles(dir)) {
    try {
      return { list: loadNetworkConfigFile(file), skipped };
    } catch (error) {
      skipped.push({ file, reason: (error as Error).message });
    }
  }
  // Each reason already names its file.
  const reasons = skipped.map((s) => s.reason).join('; ');
  throw new CniError(
    CniErrorCode.InvalidNetworkConfig,
    skipped.length === 0
      ? `no network configuration in ${dir} (looked for ${configExtensions.join(', ')} files)`
      : `no valid network configuration in ${dir}: ${reasons}`,
  );
}
