/** What a `tabby <command>` for people implements. */
export interface CliCommand {
  /** Lines for `tabby help`, e.g. "ipam list [--network N] [--json]   reservations". */
  usage: string[];
  run(args: string[]): Promise<number> | number;
}

/** A mistake in how the command was called: printed with the usage, exit 2. */
export class UsageError extends Error {}

/** The value after `name` in `args`, if the flag is there. */
export function flagValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return v;
}

/** Rows as aligned columns (two spaces apart; the last column is not padded). */
export function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
