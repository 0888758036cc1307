/**
 * Go's text/tabwriter, as kubectl describe uses it (minwidth 0, padding 2,
 * padded with spaces): cells end at tabs, and a column is aligned over
 * each block of consecutive lines that have a cell in it; a line with
 * fewer cells ends the block. Text after a line's last tab is not aligned.
 */

function width(text: string): number {
  return Array.from(text).length;
}

/** Lays out tab-separated text as tabwriter.NewWriter(out, minwidth, 8, padding, ' ', 0) would. */
export function tabwrite(text: string, minwidth = 0, padding = 2): string {
  const lines = text.split('\n');
  // A trailing newline ends the last line; it does not start another.
  if (lines.at(-1) === '') lines.pop();
  const cells = lines.map((line) => line.split('\t'));
  const out: string[] = [];

  const writeLines = (widths: readonly number[], from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const line = cells[i] ?? [];
      out.push(
        line
          .map((cell, j) =>
            j < widths.length && j < line.length - 1
              ? cell + ' '.repeat(Math.max(0, (widths[j] ?? 0) - width(cell)))
              : cell,
          )
          .join(''),
      );
    }
  };

  // tabwriter.format: find each block of lines with a cell in `column`, size it, recurse.
  const format = (widths: number[], line0: number, line1: number): void => {
    const column = widths.length;
    let start = line0;
    for (let i = line0; i < line1; i++) {
      if (column >= (cells[i] ?? []).length - 1) continue;
      writeLines(widths, start, i);
      start = i;
      let size = minwidth;
      for (; i < line1; i++) {
        const line = cells[i] ?? [];
        if (column >= line.length - 1) break;
        size = Math.max(size, width(line[column] ?? '') + padding);
      }
      format([...widths, size], start, i);
      start = i;
      i--;
    }
    writeLines(widths, start, line1);
  };

  format([], 0, cells.length);
  return out.map((line) => `${line}\n`).join('');
}
