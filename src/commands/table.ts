/**
 * Pure text helpers for the operator commands: an aligned table, ages and times
 * (byte sizes and durations: ../format.ts).
 */

export interface TableOptions {
  /** Per column: wrap cells wider than this onto more lines (undefined: never wrap). */
  readonly maxWidths?: readonly (number | undefined)[];
}

/**
 * Columns padded to the widest cell, separated by two spaces, no trailing blanks.
 * A cell is one line (newlines become spaces); a cell wider than its column's
 * maxWidth wraps at blanks, making the row taller.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], options: TableOptions = {}): string {
  const columns = Math.max(headers.length, ...rows.map((row) => row.length));
  const cells = [headers, ...rows].map((row) =>
    Array.from({ length: columns }, (_, column) => wrapText(oneLine(row[column] ?? ''), options.maxWidths?.[column])),
  );
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...cells.flatMap((row) => (row[column] as string[]).map((line) => line.length))));
  const lines: string[] = [];
  for (const row of cells) {
    const height = Math.max(...row.map((cell) => cell.length));
    for (let line = 0; line < height; line++) {
      lines.push(
        widths
          .map((width, column) => ((row[column] as string[])[line] ?? '').padEnd(width))
          .join('  ')
          .trimEnd(),
      );
    }
  }
  return lines.join('\n');
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** Greedy word wrap; a word longer than `width` is cut. Always at least one (maybe empty) line. */
export function wrapText(text: string, width: number | undefined): string[] {
  if (width === undefined || text.length <= width) return [text];
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(' ').filter((part) => part !== '')) {
    while (word.length > width) {
      if (line !== '') lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = '';
    }
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines;
}

/** How long before `now` an ISO time was: 42s ago, 5m ago, 3h ago, 2d ago. */
export function formatAge(iso: string, now: Date): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return '?';
  const seconds = Math.max(0, Math.round((now.getTime() - then) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** `2025-11-27 08:00:01Z` from an ISO time (UTC, to the second); the text itself when it is not one. */
export function formatTime(iso: string): string {
  const time = Date.parse(iso);
  return Number.isNaN(time) ? iso : `${new Date(time).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** An argv as one line a shell user can read: words with blanks or quotes are single-quoted. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** Cuts text to `max` characters, marking the cut with an ellipsis. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
