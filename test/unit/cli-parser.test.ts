import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  command,
  editDistance,
  helpOf,
  isGroup,
  nearMiss,
  parseCommand,
  shortUsage,
  UsageError,
  wrap,
} from '../../cmd/cli/command';
import { COMMANDS, leafCommands } from '../../cmd/cli/main';

// The one parser every `tabby <command>` uses: flags declared per command, --help, --flag=value,
// unknown flags with the near miss, missing values and required flags.

const demo = command({
  name: 'demo',
  summary: 'a command to test the parser with',
  options: {
    config: { type: 'string', arg: 'CONFLIST', required: true, help: 'the conflist' },
    'data-dir': { type: 'string', arg: 'DIR', help: 'a directory' },
    filename: { type: 'string', short: 'f', arg: 'FILE', help: 'a file' },
    json: { type: 'boolean', help: 'as JSON' },
  },
  positionals: [
    { name: 'WHAT', help: 'what' },
    { name: 'NAME', help: 'which', optional: true },
  ],
  run: () => 0,
});

const parse = (...args: string[]) => parseCommand(demo, args);
const usageError = (args: string[]): string => {
  try {
    parse(...args);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`no usage error for ${args.join(' ')}`);
};

describe('parseCommand', () => {
  it('takes --flag value, --flag=value, -f value, -fvalue and -f=value alike, positionals anywhere', () => {
    for (const args of [
      ['--config', 'c', 'x', '--data-dir', '/d', '-f', 'F', '--json'],
      ['x', '--config=c', '--data-dir=/d', '-fF', '--json'],
      ['--json', '--config', 'c', '--filename=F', 'x', '--data-dir', '/d'],
      ['-f=F', 'x', '--config', 'c', '--data-dir', '/d', '--json'],
    ]) {
      expect(parse(...args), args.join(' ')).toEqual({
        help: false,
        values: { config: 'c', 'data-dir': '/d', filename: 'F', json: true },
        positionals: ['x'],
      });
    }
    expect(parse('--config', 'c', 'x', 'y')).toMatchObject({ positionals: ['x', 'y'], values: { config: 'c' } });
    // a value that starts with a dash is given with =
    expect(parse('--config=-odd', 'x')).toMatchObject({ values: { config: '-odd' } });
    // after --, everything is a positional
    expect(parse('--config', 'c', '--', '--json')).toMatchObject({ positionals: ['--json'], values: { config: 'c' } });
  });

  it('answers --help and -h before any other check, even on a line with mistakes', () => {
    for (const args of [
      ['--help'],
      ['-h'],
      ['--config', 'c', 'x', '-h'],
      ['--bogus', '--help'],
      ['--config', '--help'],
    ])
      expect(parse(...args), args.join(' ')).toEqual({ help: true });
  });

  it('refuses an unknown flag, suggesting the near miss', () => {
    expect(usageError(['--confg', 'c', 'x'])).toBe('unknown flag --confg (did you mean --config?)');
    expect(usageError(['--config', 'c', 'x', '--jsn'])).toBe('unknown flag --jsn (did you mean --json?)');
    expect(usageError(['--config', 'c', 'x', '--data'])).toBe('unknown flag --data (did you mean --data-dir?)');
    expect(usageError(['--config', 'c', 'x', '--bogus'])).toBe('unknown flag --bogus');
    expect(usageError(['--config', 'c', 'x', '-z'])).toBe('unknown flag -z');
    expect(usageError(['--config', 'c', 'x', '--bogus=1'])).toBe('unknown flag --bogus');
  });

  it('says which flag lacks its value, which takes none, and which required one is missing', () => {
    expect(usageError(['x', '--config'])).toBe('--config needs a value (--config CONFLIST)');
    expect(usageError(['x', '--config', '--json'])).toBe('--config needs a value (--config CONFLIST)');
    expect(usageError(['x', '--config='])).toBe('--config needs a value (--config CONFLIST)');
    expect(usageError(['x', '--config', 'c', '-f'])).toBe('-f needs a value (--filename FILE)');
    expect(usageError(['x', '--config', 'c', '--json=yes'])).toBe('--json takes no value');
    expect(usageError(['x'])).toBe('--config CONFLIST is required');
    expect(usageError(['x', '--json'])).toBe('--config CONFLIST is required');
  });

  it('counts positionals', () => {
    expect(usageError(['--config', 'c'])).toBe('WHAT is required');
    expect(usageError(['--config', 'c', 'a', 'b', 'c'])).toBe('unexpected argument "c" (takes WHAT NAME)');
    const none = command({ name: 'none', summary: 's', options: {}, run: () => 0 });
    expect(() => parseCommand(none, ['extra'])).toThrow('takes no arguments, got "extra"');
  });
});

describe('near misses', () => {
  it('edit distance counts insertions, deletions, substitutions and swaps as one each', () => {
    expect(editDistance('config', 'config')).toBe(0);
    expect(editDistance('confg', 'config')).toBe(1);
    expect(editDistance('conifg', 'config')).toBe(1);
    expect(editDistance('jsno', 'json')).toBe(1);
    expect(editDistance('status', 'stats')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests the closest within a third of the word, or the only command it starts', () => {
    expect(nearMiss('--confg', ['--config', '--json'])).toBe('--config');
    expect(nearMiss('pln', Object.keys(COMMANDS))).toBe('plan');
    expect(nearMiss('stauts', Object.keys(COMMANDS))).toBe('status');
    expect(nearMiss('instal', Object.keys(COMMANDS))).toBe('install');
    expect(nearMiss('valid', Object.keys(COMMANDS))).toBe('validate');
    expect(nearMiss('frobnicate', Object.keys(COMMANDS))).toBeUndefined();
    expect(nearMiss('--bogus', ['--config', '--json'])).toBeUndefined();
  });
});

describe('every command', () => {
  const leaves = leafCommands();

  it('is reachable: one per command, a group per subcommand', () => {
    expect(leaves.map((c) => c.name)).toEqual([
      'version',
      'help',
      'validate',
      'plan',
      'reconcile',
      'teardown',
      'status',
      'install',
      'ipam list',
      'ipam release',
      'ipam check',
      'agent',
      'apply',
      'get',
      'delete',
    ]);
  });

  it.each(leaves.map((c) => [c.name, c]))('%s: --help and -h give its help, naming every flag', (_, c) => {
    expect(parseCommand(c, ['--help'])).toEqual({ help: true });
    expect(parseCommand(c, ['-h'])).toEqual({ help: true });
    const text = helpOf(c);
    expect(text.startsWith(`Usage: tabby ${c.name}`)).toBe(true);
    for (const name of Object.keys(c.options)) expect(text).toContain(`--${name}`);
    for (const p of c.positionals) expect(text).toContain(p.name);
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
  });

  it.each(leaves.map((c) => [c.name, c]))('%s: an unknown flag is an error, a near miss is suggested', (_, c) => {
    expect(() => parseCommand(c, ['--bogus'])).toThrow(/^unknown flag --bogus$/);
    const [first] = Object.keys(c.options);
    if (first && first.length >= 4) {
      const typo = `--${first.slice(0, -1)}${first.slice(-1) === 'x' ? 'y' : 'x'}`; // last letter wrong
      expect(() => parseCommand(c, [typo]), typo).toThrow(`did you mean --${first}?`);
    }
  });

  it('groups list their subcommands in their usage and help', () => {
    for (const g of Object.values(COMMANDS).filter(isGroup)) {
      expect(shortUsage(g)).toBe(`tabby ${g.name} ${g.subcommands.map((s) => s.name.split(' ')[1]).join('|')} [flags]`);
      for (const s of g.subcommands) expect(helpOf(g)).toContain(s.name);
    }
  });

  it('short usage: required flags, positionals, then a few optional flags or [flags]', () => {
    const byName = Object.fromEntries(leaves.map((c) => [c.name, c]));
    expect(shortUsage(byName.plan)).toBe('tabby plan --config CONFLIST [--json] [--diff]');
    expect(shortUsage(byName.validate)).toBe('tabby validate FILE');
    expect(shortUsage(byName.install)).toBe('tabby install --conflist FILE [flags]');
    expect(shortUsage(byName.apply)).toBe('tabby apply --config CONFLIST -f FILE');
    expect(shortUsage(byName['ipam release'])).toBe(
      'tabby ipam release IP [--config CONFLIST] [--data-dir DIR] [--network N] [--json]',
    );
  });
});

it('wraps words to a width', () => {
  expect(wrap('aa bb cc dd', 5)).toEqual(['aa bb', 'cc dd']);
  expect(wrap('a verylongword b', 4)).toEqual(['a', 'verylongword', 'b']);
  expect(wrap('', 10)).toEqual([]);
});

it("the deploy manifests' tabby command lines parse (flags the parser knows, required ones given)", () => {
  const dir = path.join(__dirname, '../../deploy');
  const lines: string[][] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      if (v[0] === '/usr/local/bin/tabby') lines.push(v.slice(1).map(String));
      else v.forEach(walk);
    } else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.yaml')))
    for (const d of parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8'))) walk(d.toJS());
  expect(lines.length).toBeGreaterThanOrEqual(4);
  for (const [name, ...args] of lines) {
    const c = leafCommands().find((x) => x.name === name)!;
    expect(c, name).toBeDefined();
    expect(parseCommand(c, args), args.join(' ')).toMatchObject({ help: false });
  }
});
