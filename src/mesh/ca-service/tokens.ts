/**
 * How a node proves to the CA service which node it is: a per-node bearer
 * token. strata has no kubelet credentials or projected service account
 * tokens for istiod's authenticators to check, so `strata up` makes a random
 * 32-byte token for each node, gives the node its token in a file only root
 * can read, and gives the controller only the tokens' SHA-256 digests
 * (`node-tokens.json`: `{ "<node>": "<hex digest>" }`), so the controller's
 * file lets nobody pose as a node. A presented token is hashed and compared
 * with every digest in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The bytes of randomness in a node token. */
export const nodeTokenBytes = 32;

/** A new node token: 32 random bytes, base64url (43 characters). */
export function generateNodeToken(): string {
  return randomBytes(nodeTokenBytes).toString('base64url');
}

/** The digest node-tokens.json keeps of a token: SHA-256, hex. */
export function hashNodeToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

export class NodeTokenError extends Error {
  override readonly name = 'NodeTokenError';
  readonly code = 'STRATA_ERR_NODE_TOKENS';
}

const digestPattern = /^[0-9a-f]{64}$/;

/** node-tokens.json's text as node → digest bytes; throws NodeTokenError naming the file and entry at fault. */
export function parseNodeTokens(text: string, file: string): Map<string, Buffer> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new NodeTokenError(`${file} is not JSON`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new NodeTokenError(`${file} must hold a JSON object of node name → SHA-256 hex digest`);
  }
  const digests = new Map<string, Buffer>();
  for (const [node, digest] of Object.entries(parsed)) {
    if (typeof digest !== 'string' || !digestPattern.test(digest)) {
      throw new NodeTokenError(
        `${file}: the entry of node "${node}" must be a SHA-256 digest in 64 lowercase hex digits`,
      );
    }
    digests.set(node, Buffer.from(digest, 'hex'));
  }
  return digests;
}

/** The node a token belongs to: every digest is compared, in constant time, whatever matches. */
export function nodeOfToken(
  digests: ReadonlyMap<string, Buffer>,
  token: string,
): string | undefined {
  const presented = createHash('sha256').update(token, 'utf8').digest();
  let found: string | undefined;
  for (const [node, digest] of digests) {
    if (timingSafeEqual(presented, digest) && found === undefined) found = node;
  }
  return found;
}

/**
 * The controller's node-tokens.json, read at open and again whenever the
 * file changes, so a node added later is known without a restart.
 */
export class NodeTokenFile {
  #digests: Map<string, Buffer>;
  #version: string;

  private constructor(
    readonly path: string,
    digests: Map<string, Buffer>,
    version: string,
  ) {
    this.#digests = digests;
    this.#version = version;
  }

  static async open(path: string): Promise<NodeTokenFile> {
    const { digests, version } = await NodeTokenFile.#read(path);
    return new NodeTokenFile(path, digests, version);
  }

  static async #read(path: string): Promise<{ digests: Map<string, Buffer>; version: string }> {
    let text: string;
    let version: string;
    try {
      const info = await stat(path);
      version = `${info.mtimeMs}:${info.size}:${info.ino}`;
      text = await readFile(path, 'utf8');
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new NodeTokenError(`Cannot read the node tokens ${path}: ${why}`, { cause: error });
    }
    return { digests: parseNodeTokens(text, path), version };
  }

  /** The nodes that have a token. */
  nodes(): string[] {
    return [...this.#digests.keys()];
  }

  /** The node whose token this is, or undefined; a changed file is read again first (a broken one is kept out). */
  async nodeFor(token: string): Promise<string | undefined> {
    try {
      const info = await stat(this.path);
      if (`${info.mtimeMs}:${info.size}:${info.ino}` !== this.#version) {
        const { digests, version } = await NodeTokenFile.#read(this.path);
        this.#digests = digests;
        this.#version = version;
      }
    } catch {
      // A file being replaced or broken: keep the tokens read last.
    }
    return nodeOfToken(this.#digests, token);
  }
}

/** Writes `text` to `path` with `mode` through a temporary file and a rename. */
async function writePrivateFile(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(temporary, mode);
  await rename(temporary, path);
}

/**
 * Makes a token for each node: the token itself into its node's file
 * (`tokenFile(node)`, mode 0600), the digests into `tokensFile` (mode 0600).
 */
export async function provisionNodeTokens(options: {
  nodes: readonly string[];
  tokensFile: string;
  tokenFile: (node: string) => string;
}): Promise<void> {
  const digests: Record<string, string> = {};
  for (const node of options.nodes) {
    const token = generateNodeToken();
    const file = options.tokenFile(node);
    await mkdir(dirname(file), { recursive: true });
    await writePrivateFile(file, `${token}\n`, 0o600);
    digests[node] = hashNodeToken(token);
  }
  await mkdir(dirname(options.tokensFile), { recursive: true, mode: 0o700 });
  await writePrivateFile(options.tokensFile, `${JSON.stringify(digests, null, 2)}\n`, 0o600);
}
