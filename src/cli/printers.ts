/**
 * `strata get` output as kubectl prints it: tables with kubectl's columns
 * per kind (k8s.io/kubernetes/pkg/printers/internalversion/printers.go),
 * aligned as its tabwriter aligns them, and `-o yaml|json|name`.
 */
import { stringify } from 'yaml';
import type { KubeObject, ResourceType } from '../api/types.js';
import { kubeYamlStringifyOptions } from './kube-yaml.js';
import { type ColumnContext, columnsFor } from './table-columns.js';

export { formatAge, humanDuration } from './table-columns.js';

export interface TableOptions {
  /** `-o wide`: the extra columns. */
  wide?: boolean;
  /** `-A`: a NAMESPACE column first (for namespaced kinds). */
  allNamespaces?: boolean;
  /** The time AGE counts to: a Date or epoch milliseconds; the current time when absent. */
  now?: Date | number;
  /** The namespace listed, for "No resources found in <ns> namespace."; `default` when absent. */
  namespace?: string;
  /** What some kinds' columns read from other objects (table-columns.ts). */
  context?: ColumnContext;
}

// kubectl's tabwriter: minwidth 6, padding 3, the last cell of a line unpadded.
const minColumnWidth = 6;
const columnPadding = 3;

/** Code points, as the tabwriter counts runes. */
function textWidth(text: string): number {
  return Array.from(text).length;
}

/** Rows laid out as Go's text/tabwriter lays out tab-separated cells. */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.slice(0, -1).forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? minColumnWidth, textWidth(cell) + columnPadding);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) =>
          i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - textWidth(cell)),
        )
        .join(''),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/**
 * A table of `objects` of one kind, kubectl's columns for it (NAME and AGE
 * for kinds without their own), or kubectl's "No resources found" line.
 */
export function printTable(
  resource: ResourceType,
  objects: readonly KubeObject[],
  options: TableOptions = {},
): string {
  const withNamespace = (options.allNamespaces ?? false) && resource.namespaced;
  if (objects.length === 0) {
    return resource.namespaced && !options.allNamespaces
      ? `No resources found in ${options.namespace ?? 'default'} namespace.\n`
      : 'No resources found\n';
  }
  const now = options.now === undefined ? Date.now() : new Date(options.now).getTime();
  const wide = options.wide ?? false;
  const columns = columnsFor(resource, wide, options.context);
  const header = [
    ...(withNamespace ? ['NAMESPACE'] : []),
    'NAME',
    ...columns.headers,
    ...(wide ? columns.wideHeaders : []),
  ];
  const rows = objects.map((object) => {
    const { cells, wideCells } = columns.row(object, now);
    return [
      ...(withNamespace ? [object.metadata.namespace ?? ''] : []),
      object.metadata.name ?? '',
      ...cells,
      ...(wide ? wideCells : []),
    ];
  });
  return alignColumns([header, ...rows]);
}

export type OutputFormat = 'yaml' | 'json' | 'name';

export interface OutputOptions {
  /** Print a List even for one object, as `get <kind>` does (`get <kind> <name>` prints the object). */
  list?: boolean;
}

/** Objects with their keys in order at every level, as kubectl prints them (from Go maps). */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

/** `pod`, `deployment.apps`: how kubectl names a kind in its messages and `-o name`. */
export function qualifiedKind(kind: string, group: string): string {
  return `${kind.toLowerCase()}${group === '' ? '' : `.${group}`}`;
}

/** `kind.group/name` lowercased as kubectl's `-o name` prints it: `pod/web-1`, `deployment.apps/web`. */
export function objectName(object: KubeObject): string {
  const slash = object.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : object.apiVersion.slice(0, slash);
  return `${qualifiedKind(object.kind, group)}/${object.metadata.name ?? ''}`;
}

/** `-o yaml|json|name`: one object as itself, several (or `list`) as a `v1` List. */
export function printObjects(
  objects: readonly KubeObject[],
  format: OutputFormat,
  options: OutputOptions = {},
): string {
  if (format === 'name') return objects.map((object) => `${objectName(object)}\n`).join('');
  const [only] = objects;
  const value =
    objects.length === 1 && only !== undefined && !options.list
      ? sortedKeys(only)
      : {
          apiVersion: 'v1',
          items: objects.map(sortedKeys),
          kind: 'List',
          metadata: { resourceVersion: '' },
        };
  // kubectl indents JSON by four spaces.
  return format === 'json'
    ? `${JSON.stringify(value, null, 4)}\n`
    : stringify(value, kubeYamlStringifyOptions);
}
