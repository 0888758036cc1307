/**
 * The fields every plugin's network configuration shares (CNI spec 1.1.0,
 * "Plugin configuration objects"), read from stdin.
 */
import { CniError, CniErrorCode } from './errors.js';
import { type CniDns, type CniResult, decodeDns, decodeResult } from './result.js';
import { type CniVersion, requireSupportedVersion } from './version.js';

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** The whole object as the runtime sent it, for delegation and plugin-specific fields. */
  raw: Record<string, unknown>;
  ipam?: Record<string, unknown>;
  dns: CniDns;
  runtimeConfig: Record<string, unknown>;
  args: Record<string, unknown>;
  prevResult?: CniResult;
  /** GC: the attachments the runtime still knows. */
  validAttachments?: { containerId: string; ifname: string }[];
}

const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function invalid(message: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, message);
}

function optionalObject(value: unknown, field: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${field} must be an object, got ${JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Parses a JSON object (stdin, a config file), with the spec's code 6 when it is not one. */
export function decodeJson(
  text: string,
  source = 'the network configuration on stdin',
): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CniError(
      CniErrorCode.DecodingFailure,
      `cannot decode ${source}: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CniError(
      CniErrorCode.DecodingFailure,
      `cannot decode ${source}: expected a JSON object`,
    );
  }
  return parsed as Record<string, unknown>;
}

function parseAttachments(
  value: unknown,
  field: string,
): { containerId: string; ifname: string }[] {
  if (!Array.isArray(value)) throw invalid(`${field} must be a list of {containerID, ifname}`);
  return value.map((entry: unknown, i) => {
    const e = entry as Record<string, unknown> | null;
    if (!e || typeof e.containerID !== 'string' || typeof e.ifname !== 'string') {
      throw invalid(`${field}[${i}] must be an object with string "containerID" and "ifname"`);
    }
    return { containerId: e.containerID, ifname: e.ifname };
  });
}

/** Reads the common fields of a plugin configuration object. */
export function parseNetConf(raw: Record<string, unknown>): NetConf {
  const cniVersion = requireSupportedVersion(raw.cniVersion);
  if (typeof raw.name !== 'string' || !namePattern.test(raw.name)) {
    throw invalid(
      `name must start with a letter or digit followed by letters, digits, "_", "." or "-": got ${JSON.stringify(raw.name)}`,
    );
  }
  if (typeof raw.type !== 'string' || raw.type === '') {
    throw invalid('type must name the plugin');
  }
  const conf: NetConf = {
    cniVersion,
    name: raw.name,
    type: raw.type,
    raw,
    dns: decodeDns(raw.dns, 'dns'),
    runtimeConfig: optionalObject(raw.runtimeConfig, 'runtimeConfig') ?? {},
    args: optionalObject(raw.args, 'args') ?? {},
  };
  const ipam = optionalObject(raw.ipam, 'ipam');
  if (ipam) conf.ipam = ipam;
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    conf.prevResult = decodeResult(raw.prevResult);
  }
  // CNI 1.1.0 GC: libcni sends cni.dev/valid-attachments; accept the older cni.dev/attachments too.
  const valid = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (valid !== undefined) {
    conf.validAttachments = parseAttachments(
      valid,
      raw['cni.dev/valid-attachments'] !== undefined
        ? 'cni.dev/valid-attachments'
        : 'cni.dev/attachments',
    );
  }
  return conf;
}
