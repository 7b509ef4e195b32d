import { parseArgs } from 'node:util';

/**
 * One command-line parser for every `tabby <command>`: each command declares its flags and
 * positionals, and gets `--help`, `--flag value` and `--flag=value`, an error for an unknown flag
 * (with the near miss), for a missing value and for a missing required flag, all the same way.
 * Built on Node's util.parseArgs in strict mode; only the messages are tabby's own.
 */

export interface OptionSpec {
  type: 'string' | 'boolean';
  help: string;
  /** The value's name in the usage, e.g. FILE (string flags). */
  arg?: string;
  /** A one-letter alias, e.g. `f` for `-f`. */
  short?: string;
  required?: boolean;
}

export interface PositionalSpec {
  /** As shown in the usage, e.g. IP or pools|nodes|blocks. */
  name: string;
  help: string;
  optional?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** The parsed flags: a string flag's value (or undefined), a boolean flag's presence. */
export type Values<O extends OptionSpecs> = {
  -readonly [K in keyof O]: O[K]['type'] extends 'boolean'
    ? boolean
    : O[K]['required'] extends true
      ? string
      : string | undefined;
};

/** A command with its flags. `run` gets them parsed and checked. */
export interface Command {
  /** The words after `tabby`: "plan", "ipam list". */
  name: string;
  /** One line for `tabby help`. */
  summary: string;
  options: OptionSpecs;
  positionals: PositionalSpec[];
  /** More text for `--help`, after the summary. */
  details?: string;
  run(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number> | number;
}

/** A command whose first positional picks one of its subcommands (`tabby ipam list`). */
export interface CommandGroup {
  name: string;
  summary: string;
  subcommands: Command[];
}

export type CliCommand = Command | CommandGroup;

export const isGroup = (c: CliCommand): c is CommandGroup => 'subcommands' in c;

/** Declares a command; `const` keeps the flag types literal, so `run` sees `values.json` as a boolean. */
export function command<const O extends OptionSpecs>(spec: {
  name: string;
  summary: string;
  options: O;
  positionals?: PositionalSpec[];
  details?: string;
  run(values: Values<O>, positionals: string[]): Promise<number> | number;
}): Command {
  return {
    ...spec,
    positionals: spec.positionals ?? [],
    run: (values, positionals) => spec.run(values as Values<O>, positionals),
  };
}

/** A mistake in how the command was called: printed with the command's short usage, exit 2. */
export class UsageError extends Error {}

/** Levenshtein distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate `word` was most likely meant as: the closest within a third of its length (at least 1
 * edit), or the one it is the start of (`--data` for `--data-dir`). Undefined when none is close.
 */
export function nearMiss(word: string, candidates: string[]): string | undefined {
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d <= limit && (!best || d < best.d)) best = { c, d };
  }
  if (best) return best.c;
  const starts = candidates.filter((c) => word.length >= 3 && c.startsWith(word));
  return starts.length === 1 ? starts[0] : undefined;
}

const flagName = (name: string): string => `--${name}`;

/** `--config CONFLIST`, `--json`, `-f/--filename FILE`. */
function flagUsage(name: string, o: OptionSpec): string {
  const value = o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : '';
  return `${flagName(name)}${value}`;
}

/** The one-line synopsis: required flags, positionals, then the optional flags (or `[flags]` when many). */
export function shortUsage(c: CliCommand): string {
  if (isGroup(c)) return `tabby ${c.name} ${c.subcommands.map((s) => s.name.split(' ').pop()).join('|')} [flags]`;
  const opts = Object.entries(c.options);
  const synopsis = (n: string, o: OptionSpec): string =>
    o.short ? `-${o.short}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}` : flagUsage(n, o);
  const required = opts.filter(([, o]) => o.required).map(([n, o]) => synopsis(n, o));
  const optional = opts.filter(([, o]) => !o.required);
  const pos = c.positionals.map((p) => (p.optional ? `[${p.name}]` : p.name));
  const rest = optional.length > 4 ? ['[flags]'] : optional.map(([n, o]) => `[${synopsis(n, o)}]`);
  return ['tabby', c.name, ...required, ...pos, ...rest].join(' ');
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

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

const HELP_WIDTH = 100;

/** Two columns, the second wrapped to HELP_WIDTH and its continuation lines under its start. */
function described(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([a]) => a.length));
  const room = Math.max(30, HELP_WIDTH - w - 2);
  return rows
    .flatMap(([a, b]) => wrap(b, room).map((l, i) => `${i === 0 ? a.padEnd(w) : ' '.repeat(w)}  ${l}`))
    .join('\n');
}

const sentence = (s: string): string => `${s[0].toUpperCase()}${s.slice(1)}.`;

/** The whole `tabby <command> --help` text. */
export function helpOf(c: CliCommand): string {
  if (isGroup(c)) {
    return [
      `Usage: ${shortUsage(c)}`,
      '',
      sentence(c.summary),
      '',
      'Commands:',
      described(c.subcommands.map((s) => [`  ${s.name}`, s.summary])),
      '',
      `\`tabby ${c.name} COMMAND --help\` lists the flags of each.`,
      '',
    ].join('\n');
  }
  const rows: [string, string][] = [
    ...c.positionals.map((p): [string, string] => [`  ${p.name}`, p.help]),
    ...Object.entries(c.options).map(([n, o]): [string, string] => [
      `  ${o.short ? `-${o.short}, ` : ''}${flagUsage(n, o)}`,
      `${o.help}${o.required ? ' (required)' : ''}`,
    ]),
    ['  -h, --help', 'this text'],
  ];
  return [
    `Usage: ${shortUsage(c)}`,
    '',
    sentence(c.summary),
    ...(c.details ? ['', c.details.trimEnd()] : []),
    '',
    'Flags and arguments (--flag VALUE or --flag=VALUE):',
    described(rows),
    '',
  ].join('\n');
}

export type Parsed = { help: true } | { help: false; values: Record<string, string | boolean>; positionals: string[] };

interface Token {
  kind: 'option' | 'positional' | 'option-terminator';
  name?: string;
  rawName?: string;
  value?: string;
  inlineValue?: boolean;
}

/** Why strict parsing refused `args`, found again from the tokens of a lenient parse, in tabby's words. */
function diagnose(c: Command, args: string[], fallback: string): UsageError {
  const { tokens } = parseArgs({
    args,
    options: parserOptions(c),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const t of tokens as Token[]) {
    if (t.kind !== 'option') continue;
    const o = c.options[t.name!];
    if (!o && t.name !== 'help') {
      const names = Object.keys(c.options).map(flagName);
      const guess = nearMiss(`--${t.name}`, names);
      return new UsageError(`unknown flag ${t.rawName}${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
    if (!o) continue;
    if (o.type === 'boolean' && t.value !== undefined) return new UsageError(`${flagName(t.name!)} takes no value`);
    if (o.type === 'string' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-'))))
      return new UsageError(`${t.rawName} needs a value (${flagUsage(t.name!, o)})`);
  }
  return new UsageError(fallback.split('\n')[0]);
}

function parserOptions(c: Command): Record<string, { type: 'string' | 'boolean'; short?: string }> {
  const out: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [n, o] of Object.entries(c.options)) out[n] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  return out;
}

/** Parses and checks a command's arguments; throws UsageError saying what is wrong. */
export function parseCommand(c: Command, args: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args, options: parserOptions(c), strict: true, allowPositionals: true, tokens: true });
  } catch (e) {
    // `--help` wins over any other mistake on the line: whoever typed it wants the help.
    if (args.some((a) => a === '--help' || a === '-h')) return { help: true };
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw diagnose(c, args, (e as Error).message);
    throw e;
  }
  const values = parsed.values as Record<string, string | boolean>;
  if (values.help) return { help: true };
  delete values.help;
  for (const t of parsed.tokens as Token[]) {
    // `-f=x` is `-f` with the value `=x` to parseArgs; people mean x
    if (t.kind === 'option' && t.inlineValue && t.rawName?.length === 2 && t.value?.startsWith('='))
      values[t.name!] = t.value.slice(1);
  }
  for (const [n, o] of Object.entries(c.options)) {
    if (o.type === 'boolean') values[n] = values[n] === true;
    if (o.type === 'string' && values[n] === '')
      throw new UsageError(`${flagName(n)} needs a value (${flagUsage(n, o)})`);
    if (o.required && values[n] === undefined) throw new UsageError(`${flagUsage(n, o)} is required`);
  }
  const pos = parsed.positionals;
  const needed = c.positionals.filter((p) => !p.optional);
  if (pos.length < needed.length) throw new UsageError(`${needed[pos.length].name} is required`);
  if (pos.length > c.positionals.length) {
    const extra = pos[c.positionals.length];
    throw new UsageError(
      c.positionals.length === 0
        ? `takes no arguments, got "${extra}"`
        : `unexpected argument "${extra}" (takes ${c.positionals.map((p) => p.name).join(' ')})`,
    );
  }
  return { help: false, values, positionals: pos };
}
