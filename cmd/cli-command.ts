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
