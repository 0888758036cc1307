/**
 * Manifests read the way `kubectl apply -f` reads them (kubectl's resource
 * builder, k8s.io/cli-runtime/pkg/resource/visitor.go): a file, a directory
 * of .json/.yaml/.yml files, or `-` for stdin; `---`-separated YAML
 * documents or concatenated JSON objects; `kind: List` expanded into its
 * items. Each document keeps where it came from, so that every problem can
 * name the file, the document, the object and the field.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Document,
  isMap,
  isNode,
  isScalar,
  isSeq,
  parseAllDocuments,
  parseDocument,
} from 'yaml';
import { kubeYamlParseOptions } from './kube-yaml.js';

export { formatProblem, validateManifests } from './manifest-problems.js';
export type {
  ManifestProblem,
  ManifestProblemReason,
  ValidateOptions,
} from './manifest-problems.js';

/** The name kubectl gives manifests read from stdin. */
export const stdinName = 'STDIN';

export interface ManifestSyntaxError {
  /** The syntax the document was read as: JSON when it starts with `{`, as kubectl sniffs it. */
  syntax: 'yaml' | 'json';
  message: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
}

/** One object (or one unreadable document) of a manifest source. */
export interface LoadedManifest {
  /** The file as the user named it (joined under a named directory), or `STDIN`. */
  file: string;
  /** The document's place in its file, from 1: `---`-separated YAML documents, or concatenated JSON values. */
  document: number;
  /** For an object expanded from a List: where it sat (`items[2]`). */
  listItem?: string;
  /** The 1-based line where the object (or the document) starts. */
  line: number;
  /** The parsed document as JSON-compatible values; undefined when it does not parse. */
  object: unknown;
  syntaxError?: ManifestSyntaxError;
  /** The line of a field path (`spec.ports[0].port`), or of its nearest ancestor present in the source. */
  lineOf(field: string): number | undefined;
}

/** The source itself cannot be read: a path that does not exist, a file without permission. */
export class ManifestSourceError extends Error {
  readonly code = 'STRATA_ERR_MANIFEST_SOURCE';
  override readonly name = 'ManifestSourceError';
}

export interface LoadOptions {
  /** Descend into subdirectories of a directory (kubectl's `-R`). */
  recursive?: boolean;
}

// kubectl's FileExtensions; compared as kubectl does, case-sensitively.
const manifestExtensions = ['.json', '.yaml', '.yml'];

/**
 * Every manifest in `source` (a file, a directory, or `-` for stdin), in
 * order. A named file is read whatever its extension; a directory gives its
 * .json/.yaml/.yml files in name order. Documents that do not parse are
 * returned with their `syntaxError`; validateManifests reports them.
 */
export function loadManifests(
  source: string,
  readStdin: () => string = () => readFileSync(0, 'utf8'),
  options: LoadOptions = {},
): LoadedManifest[] {
  if (source === '-') return parseManifests(stdinName, readStdin());
  return manifestFiles(source, options.recursive ?? false).flatMap((file) =>
    parseManifests(file, readManifestFile(file)),
  );
}

function sourceError(path: string, error: unknown): ManifestSourceError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return new ManifestSourceError(`the path "${path}" does not exist`, { cause: error });
  }
  return new ManifestSourceError(`cannot read "${path}": ${(error as Error).message}`, {
    cause: error,
  });
}

function manifestFiles(path: string, recursive: boolean): string[] {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (error) {
    throw sourceError(path, error);
  }
  // "Don't check extension if the filepath was passed explicitly" (visitor.go).
  return isDirectory ? directoryFiles(path, recursive) : [path];
}

/** A directory's manifest files in lexical order, as filepath.Walk visits them. */
function directoryFiles(directory: string, recursive: boolean): string[] {
  let entries;
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch (error) {
    throw sourceError(directory, error);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return entries.flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return recursive ? directoryFiles(path, true) : [];
    return manifestExtensions.some((extension) => entry.name.endsWith(extension)) ? [path] : [];
  });
}

function readManifestFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw sourceError(file, error);
  }
}

/** The manifests in one file's text; `file` is the name problems will carry. */
export function parseManifests(file: string, text: string): LoadedManifest[] {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  // kubectl's YAMLOrJSONDecoder: a stream starting with '{' is JSON, anything else YAML.
  return /^\s*\{/.test(source) ? parseJsonStream(file, source) : parseYamlStream(file, source);
}

/** 1-based line and column of an offset. */
function positionAt(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = source.indexOf('\n'); i >= 0 && i < offset; i = source.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

type PathSegment = string | number;

/** `spec.ingress[0].ports[1].port`, `metadata.labels[app.kubernetes.io/name]` → its segments. */
export function parseFieldPath(field: string): PathSegment[] {
  const path: PathSegment[] = [];
  let name = '';
  for (let i = 0; i < field.length; i++) {
    const char = field.charAt(i);
    if (char === '.' || char === '[') {
      if (name !== '') path.push(name);
      name = '';
      const close = field.indexOf(']', i);
      if (char === '[' && close > i) {
        const key = field.slice(i + 1, close);
        path.push(/^\d+$/.test(key) ? Number(key) : key);
        i = close;
      }
    } else {
      name += char;
    }
  }
  if (name !== '') path.push(name);
  return path;
}

function formatItemPath(path: readonly PathSegment[]): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/**
 * The offset of the deepest node along `path` in a parsed document: a map
 * entry's key (the line a reader looks for), a sequence item's start.
 */
function offsetAlong(root: unknown, path: readonly PathSegment[]): number | undefined {
  let node = root;
  let offset = isNode(root) ? root.range?.[0] : undefined;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) =>
        isScalar(p.key) ? String(p.key.value) === String(segment) : false,
      );
      if (!pair) break;
      offset = isNode(pair.key) ? (pair.key.range?.[0] ?? offset) : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (!isNode(item)) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** Where a document's text sits in its file, to turn node offsets into file lines. */
interface DocumentSource {
  file: string;
  document: number;
  source: string;
  /** Offset of the parsed text within `source` (non-zero for a JSON value after others). */
  base: number;
  /** The parsed document, for field lines; undefined when only JSON.parse read it. */
  parsed: Document.Parsed | undefined;
}

function lineIn(at: DocumentSource, path: readonly PathSegment[]): number | undefined {
  const offset = at.parsed && offsetAlong(at.parsed.contents, path);
  return offset === undefined ? undefined : positionAt(at.source, at.base + offset).line;
}

/** The object, or each item of a List (recursively), as manifests. */
function expandLists(
  at: DocumentSource,
  object: unknown,
  itemPath: PathSegment[],
): LoadedManifest[] {
  if (
    typeof object === 'object' &&
    object !== null &&
    !Array.isArray(object) &&
    typeof (object as { kind?: unknown }).kind === 'string' &&
    (object as { kind: string }).kind.endsWith('List') &&
    Array.isArray((object as { items?: unknown }).items)
  ) {
    const items = (object as { items: unknown[] }).items;
    return items.flatMap((item, i) => expandLists(at, item, [...itemPath, 'items', i]));
  }
  const documentLine = lineIn(at, []) ?? positionAt(at.source, at.base).line;
  return [
    {
      file: at.file,
      document: at.document,
      ...(itemPath.length > 0 ? { listItem: formatItemPath(itemPath) } : {}),
      line: lineIn(at, itemPath) ?? documentLine,
      object,
      lineOf: (field) => lineIn(at, [...itemPath, ...parseFieldPath(field)]),
    },
  ];
}

function unparsed(
  at: Omit<DocumentSource, 'parsed'>,
  syntaxError: ManifestSyntaxError,
  start: number,
): LoadedManifest {
  return {
    file: at.file,
    document: at.document,
    line: positionAt(at.source, start).line,
    object: undefined,
    syntaxError,
    lineOf: () => undefined,
  };
}

function parseYamlStream(file: string, source: string): LoadedManifest[] {
  const documents = parseAllDocuments(source, kubeYamlParseOptions);
  if (!Array.isArray(documents)) return [];
  return documents.flatMap((parsed, i) => {
    const at: DocumentSource = { file, document: i + 1, source, base: 0, parsed };
    const start = parsed.contents?.range[0] ?? parsed.range[0];
    const [error] = parsed.errors;
    let object: unknown;
    try {
      if (error) throw error;
      object = parsed.toJS({ maxAliasCount: 100 });
    } catch (thrown) {
      const offset = error ? error.pos[0] : start;
      return [
        unparsed(
          at,
          { syntax: 'yaml', message: (thrown as Error).message, ...positionAt(source, offset) },
          start,
        ),
      ];
    }
    // kubectl skips empty documents (only comments, a trailing `---`, `null`).
    if (object === null || object === undefined) return [];
    return expandLists(at, object, []);
  });
}

const jsonWhitespace = new Set([' ', '\t', '\n', '\r']);

/** The [start, end) of each top-level value of a JSON stream (`{...}{...}`), as json.Decoder reads them. */
function splitJsonValues(source: string): [number, number][] {
  const values: [number, number][] = [];
  let start = -1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < source.length; i++) {
    const char = source.charAt(i);
    if (start < 0) {
      if (jsonWhitespace.has(char)) continue;
      if (char !== '{' && char !== '[') {
        // Not a JSON value: hand the rest to JSON.parse to say why.
        values.push([i, source.length]);
        return values;
      }
      start = i;
    }
    if (inString) {
      if (escaped) escaped = false;
      else if (char === '\\') escaped = true;
      else if (char === '"') inString = false;
    } else if (char === '"') {
      inString = true;
    } else if (char === '{' || char === '[') {
      depth++;
    } else if (char === '}' || char === ']') {
      depth--;
      if (depth === 0) {
        values.push([start, i + 1]);
        start = -1;
      }
    }
  }
  if (start >= 0) values.push([start, source.length]);
  return values;
}

function parseJsonStream(file: string, source: string): LoadedManifest[] {
  return splitJsonValues(source).flatMap(([start, end], i) => {
    const text = source.slice(start, end);
    const at = { file, document: i + 1, source, base: start };
    let object: unknown;
    try {
      object = JSON.parse(text);
    } catch (error) {
      // V8 says "... in JSON at position N" (Node 22 adds "(line L column C)") for most errors.
      const message = (error as Error).message;
      const position = /at position (\d+)/.exec(message);
      const offset = position
        ? start + Number(position[1])
        : /end of JSON/.test(message)
          ? end
          : start;
      const syntaxError: ManifestSyntaxError = {
        syntax: 'json',
        // Without a position V8 quotes the text instead: `Unexpected token 'x', "..." is not valid JSON`.
        message: message
          .replace(/ in JSON at position \d+.*$/, '')
          .replace(/, ".*" is not valid JSON$/s, ''),
        ...positionAt(source, offset),
      };
      return [unparsed(at, syntaxError, start)];
    }
    if (object === null) return [];
    // The YAML parser reads JSON too; its nodes give field lines.
    const parsed = parseDocument(text, kubeYamlParseOptions);
    return expandLists(
      { ...at, parsed: parsed.errors.length === 0 ? parsed : undefined },
      object,
      [],
    );
  });
}
