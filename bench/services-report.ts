/**
 * What each part of bench:services hands back to the spine, and how it is printed:
 * verdicts against issue 5's targets (a missed target is reported, not an error), and
 * correctness checks (a failed check makes the run exit non-zero, because its figures
 * could be hollow).
 */
import type { SectionName } from './services-lab.js';

/** One target: the measured value against its limit. */
export interface Verdict {
  target: string;
  /** The figure as printed, with its unit. */
  value: string;
  /** The limit as printed: `<= 1000 ms`, `>= 0.95`. */
  limit: string;
  met: boolean;
}

/** Something that must hold for the figures to mean anything. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SectionResult {
  section: SectionName;
  verdicts: Verdict[];
  checks: Check[];
  /** Every sample, for the JSON line. */
  data: Record<string, unknown>;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return Number.isInteger(mid)
    ? ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2
    : (sorted[Math.floor(mid)] ?? NaN);
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at] ?? NaN;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** `12,345` */
export function grouped(value: number, digits = 0): string {
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A table: the first column left-aligned, the others right-aligned, to stdout. */
export function printTable(head: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  console.log(line(head));
  for (const row of rows) console.log(line(row));
}

export function check(name: string, ok: boolean, detail: string): Check {
  return { name, ok, detail };
}
