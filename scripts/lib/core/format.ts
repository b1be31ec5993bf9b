/** The one table printer and the one duration formatter every command prints with. */

/**
 * A plain-text table: columns padded to their widest cell (the last one not), two spaces apart, a rule
 * of dashes under the header unless `rule: false`. `paint` colours a cell after it is padded: escape
 * codes counted as width would push every column out of line with the header.
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  opts: { paint?: (cell: string, column: number) => string; rule?: boolean } = {},
): string {
  const paint = opts.paint ?? ((c: string) => c);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const last = header.length - 1;
  const line = (cells: readonly string[], painted: boolean) =>
    cells
      .map((c, i) => {
        const padded = i < last ? c.padEnd(widths[i] ?? 0) : c;
        return painted ? paint(padded, i) : padded;
      })
      .join('  ')
      .trimEnd();
  return [
    line(header, false),
    ...(opts.rule === false
      ? []
      : [
          line(
            widths.map((w) => '-'.repeat(w)),
            false,
          ),
        ]),
    ...rows.map((r) => line(r, true)),
  ].join('\n');
}

/** A duration for people: "42s", "12m 5s", "3h 7m", "2d 4h". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}
