/**
 * The text of `strata describe` before alignment, as kubectl's describers
 * write it: lines of tab-separated cells at indentation levels, laid out by
 * a tabwriter; and the parts every description shares.
 */
import type { KubeObject } from '../api/types.js';
import { lastAppliedAnnotation } from './apply-patch.js';
import { tabwrite } from './tabwriter.js';

/** kubectl's describe text before alignment: lines of tab-separated cells, with indentation levels. */
export class DescribeText {
  #text = '';

  /** One line at `level` (two spaces each): the cells joined by tabs. */
  line(level: number, ...cells: string[]): void {
    this.#text += `${'  '.repeat(level)}${cells.join('\t')}\n`;
  }

  /** `Labels:  a=b` with further entries on lines of their own, aligned under the first. */
  map(
    level: number,
    title: string,
    map: Record<string, string> | undefined,
    skip: readonly string[] = [],
  ): void {
    const entries = Object.entries(map ?? {})
      .filter(([key]) => !skip.includes(key))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length === 0) {
      this.line(level, `${title}:`, '<none>');
      return;
    }
    entries.forEach(([key, value], i) => {
      this.line(level, i === 0 ? `${title}:` : '', `${key}=${value}`);
    });
  }

  toString(): string {
    return tabwrite(this.#text);
  }
}

/** RFC 1123 with a numeric zone, as kubectl prints times: `Mon, 02 Jan 2006 15:04:05 +0000`. */
export function describeTime(value: unknown): string {
  if (typeof value !== 'string') return '<unset>';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toUTCString().replace('GMT', '+0000');
}

/** Name, Namespace, Labels and Annotations: the start of every description. */
export function describeMetadata(d: DescribeText, object: KubeObject, namespaced: boolean): void {
  d.line(0, 'Name:', object.metadata.name ?? '');
  if (namespaced) d.line(0, 'Namespace:', object.metadata.namespace ?? '');
  d.map(0, 'Labels', object.metadata.labels);
  d.map(0, 'Annotations', object.metadata.annotations, [lastAppliedAnnotation]);
}

function scalar(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? '';
}

/** A field tree as kubectl's generic describer prints it: `Key:  value`, nested one level deeper. */
export function describeFields(d: DescribeText, level: number, value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) {
      if (typeof item === 'object' && item !== null) describeFields(d, level, item);
      else d.line(level, scalar(item));
    }
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [key, item] of Object.entries(value)) {
    const title = `${key.charAt(0).toUpperCase()}${key.slice(1)}:`;
    if (typeof item === 'object' && item !== null) {
      d.line(level, title);
      describeFields(d, level + 1, item);
    } else {
      d.line(level, title, scalar(item));
    }
  }
}
