/** "Did you mean": the known name closest to what was typed, for flags, commands and key names alike. */

/** The Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (prev[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * The known name nearest to `typed`, when it is close enough to have been meant: at most two edits, or a
 * third of the typed length for long names. `ignoreCase` compares upper-cased (`hcloud_token` is HCLOUD_TOKEN).
 */
export function closest(
  typed: string,
  known: readonly string[],
  opts: { ignoreCase?: boolean } = {},
): string | undefined {
  const norm = (s: string) => (opts.ignoreCase ? s.toUpperCase() : s);
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = editDistance(norm(typed), norm(name));
    if (!best || d < best.d) best = { name, d };
  }
  return best && best.d <= Math.max(2, Math.ceil(typed.length / 3)) ? best.name : undefined;
}
