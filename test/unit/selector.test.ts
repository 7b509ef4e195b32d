// Calico label selectors (conf/selector.ts): syntax, matching, canonical form and positioned errors.
import { describe, expect, it } from 'vitest';
import { parseSelector, SelectorError, selectorProblem } from '../../conf/selector';

type Labels = Record<string, string>;

const canonical = (text: string): string => parseSelector(text).toString();
const matches = (text: string, labels: Labels): boolean => parseSelector(text).matches(labels);
const errorOf = (text: string): SelectorError => {
  try {
    parseSelector(text);
  } catch (e) {
    if (e instanceof SelectorError) return e;
    throw e;
  }
  throw new Error(`parsed without error: ${text}`);
};

const NONE: Labels = {};
const ZONE_A: Labels = { zone: 'us-east-1a' };
const ZONE_B: Labels = { zone: 'us-west-2b' };

describe('operators', () => {
  it.each<[string, Labels, boolean]>([
    ['has(zone)', ZONE_A, true],
    ['has(zone)', { zone: '' }, true],
    ['has(zone)', NONE, false],
    ["zone == 'us-east-1a'", ZONE_A, true],
    ["zone == 'us-east-1a'", ZONE_B, false],
    ["zone == 'us-east-1a'", NONE, false],
    ["zone == ''", { zone: '' }, true],
    ["zone == ''", NONE, false],
    ["zone != 'us-east-1a'", ZONE_A, false],
    ["zone != 'us-east-1a'", ZONE_B, true],
    ["zone != 'us-east-1a'", NONE, true],
    ["zone in {'us-east-1a', 'us-east-1b'}", ZONE_A, true],
    ["zone in {'us-east-1a', 'us-east-1b'}", ZONE_B, false],
    ["zone in {'us-east-1a', 'us-east-1b'}", NONE, false],
    ['zone in {}', ZONE_A, false],
    ['zone in {}', NONE, false],
    ["zone not in {'us-east-1a', 'us-east-1b'}", ZONE_A, false],
    ["zone not in {'us-east-1a', 'us-east-1b'}", ZONE_B, true],
    ["zone not in {'us-east-1a', 'us-east-1b'}", NONE, true],
    ["zone notin {'us-east-1a'}", ZONE_A, false],
    ["zone notin {'us-east-1a'}", NONE, true],
    ['zone not in {}', ZONE_A, true],
    ['zone not in {}', NONE, true],
    ["zone contains 'east'", ZONE_A, true],
    ["zone contains 'east'", ZONE_B, false],
    ["zone contains 'east'", NONE, false],
    ["zone contains ''", NONE, false],
    ["zone starts with 'us-east'", ZONE_A, true],
    ["zone starts with 'us-east'", ZONE_B, false],
    ["zone starts with 'us-east'", NONE, false],
    ["zone ends with '1a'", ZONE_A, true],
    ["zone ends with '1a'", ZONE_B, false],
    ["zone ends with '1a'", NONE, false],
  ])('%s on %j is %s', (text, labels, want) => {
    expect(matches(text, labels)).toBe(want);
  });

  it('compares values exactly: no case folding, no trimming', () => {
    expect(matches("zone == 'US-EAST-1A'", ZONE_A)).toBe(false);
    expect(matches("zone == 'us-east-1a '", ZONE_A)).toBe(false);
  });

  it('reads only own labels, not Object.prototype', () => {
    expect(matches('has(constructor)', NONE)).toBe(false);
    expect(matches("toString != 'x'", NONE)).toBe(true);
    expect(matches("constructor == 'x'", { constructor: 'x' })).toBe(true);
  });
});

describe('all() and the empty selector', () => {
  it.each(['', ' ', '\t \t', 'all()', 'global()', 'all( )', '  all()  '])('%j matches every label set', (text) => {
    expect(matches(text, NONE)).toBe(true);
    expect(matches(text, ZONE_A)).toBe(true);
  });

  it.each([
    ['', 'all()'],
    ['   ', 'all()'],
    ['all()', 'all()'],
    ['global()', 'global()'],
  ])('%j reads as %s', (text, want) => {
    expect(canonical(text)).toBe(want);
  });
});

describe('precedence: || loosest, then &&, then !', () => {
  const text = "a == 'x' || b == 'y' && c == 'z'"; // a == 'x' || (b == 'y' && c == 'z')

  it.each<[Labels, boolean]>([
    [{ a: 'x' }, true],
    [{ b: 'y' }, false],
    [{ c: 'z' }, false],
    [{ b: 'y', c: 'z' }, true],
    [{ a: 'no', b: 'y', c: 'z' }, true],
    [{ a: 'no', b: 'y' }, false],
  ])('%s on %j is %s', (labels, want) => {
    expect(matches(text, labels)).toBe(want);
  });

  it('groups && inside ||, so no parentheses are needed to print it', () => {
    expect(canonical(text)).toBe('a == "x" || b == "y" && c == "z"');
    expect(canonical("a == 'x' && b == 'y' || c == 'z'")).toBe('a == "x" && b == "y" || c == "z"');
  });

  it('binds ! to one term: !a == x || b is (!(a == x)) || b', () => {
    expect(matches("!a == 'x' || has(b)", { a: 'x' })).toBe(false);
    expect(matches("!a == 'x' || has(b)", { a: 'x', b: '' })).toBe(true);
    expect(matches("!a == 'x' && has(b)", { b: '' })).toBe(true);
  });
});

describe('parentheses', () => {
  it.each<[string, Labels, boolean]>([
    ["(a == 'x' || b == 'y') && c == 'z'", { a: 'x' }, false],
    ["(a == 'x' || b == 'y') && c == 'z'", { a: 'x', c: 'z' }, true],
    ["(a == 'x' || b == 'y') && c == 'z'", { b: 'y', c: 'z' }, true],
    ['((has(a)))', { a: '' }, true],
    ['( has(a) )', NONE, false],
  ])('%s on %j is %s', (text, labels, want) => {
    expect(matches(text, labels)).toBe(want);
  });

  it.each([
    ["(a == 'x' || b == 'y') && c == 'z'", '(a == "x" || b == "y") && c == "z"'],
    ["a == 'x' || (b == 'y' && c == 'z')", 'a == "x" || b == "y" && c == "z"'],
    ["(a == 'x' && b == 'y') && c == 'z'", 'a == "x" && b == "y" && c == "z"'],
    ["a == 'x' || (b == 'y' || c == 'z')", 'a == "x" || b == "y" || c == "z"'],
    ['((has(a)))', 'has(a)'],
  ])('%s prints with only the parentheses it needs: %s', (text, want) => {
    expect(canonical(text)).toBe(want);
  });
});

describe('negation', () => {
  it.each<[string, Labels, boolean]>([
    ['!has(a)', NONE, true],
    ['!has(a)', { a: '' }, false],
    ['!!has(a)', { a: '' }, true],
    ['!!!has(a)', { a: '' }, false],
    ['! ! has(a)', NONE, false],
    ["!a == 'x'", NONE, true],
    ["!a in {'x'}", { a: 'x' }, false],
    ['!(has(a) && has(b))', { a: '' }, true],
    ['!(has(a) || has(b))', { a: '' }, false],
  ])('%s on %j is %s', (text, labels, want) => {
    expect(matches(text, labels)).toBe(want);
  });

  it.each([
    ['!has(a)', '!has(a)'],
    ['!!has(a)', 'has(a)'],
    ['!!!has(a)', '!has(a)'],
    ['!(!has(a))', 'has(a)'],
    ["! a == 'x'", '!a == "x"'],
    ['!(has(a) && has(b))', '!(has(a) && has(b))'],
  ])('%s prints as %s: pairs of ! cancel', (text, want) => {
    expect(canonical(text)).toBe(want);
  });
});

describe('strings', () => {
  it.each<[string, string]>([
    ["a == 'x'", 'x'],
    ['a == "x"', 'x'],
    [`a == "it's"`, "it's"],
    [`a == 'say "hi"'`, 'say "hi"'],
    ["a == 'a && b || !c'", 'a && b || !c'],
    ["a == ' padded '", ' padded '],
    ["a == 'back\\slash'", 'back\\slash'],
  ])('%s holds %j: either quote, no escapes', (text, value) => {
    expect(matches(text, { a: value })).toBe(true);
  });

  it('prints double quotes unless the value holds one', () => {
    expect(canonical("a == 'x'")).toBe('a == "x"');
    expect(canonical(`a == 'say "hi"'`)).toBe(`a == 'say "hi"'`);
    expect(canonical(`a in {'"', "'"}`)).toBe(`a in {'"', "'"}`);
  });
});

describe('label keys', () => {
  it.each(['a', 'A_b.c-d', 'projectcalico.org/zone', 'kubernetes.io/hostname', '0', 'x'.repeat(512)])(
    '%s is a key',
    (key) => {
      expect(matches(`${key} == 'v'`, { [key]: 'v' })).toBe(true);
      expect(matches(`has(${key})`, { [key]: 'v' })).toBe(true);
    },
  );

  it('allows operator and function names as keys', () => {
    expect(matches("in == 'x' && has == 'y' && all != 'z'", { in: 'x', has: 'y' })).toBe(true);
  });
});

describe('canonical form', () => {
  it.each([
    ["  zone=='a'&&rack!='b'  ", 'zone == "a" && rack != "b"'],
    ["zone\t==\t'a'", 'zone == "a"'],
    ["zone in {'b','a' , 'b'}", 'zone in {"a", "b"}'],
    ["zone notin {'a'}", 'zone not in {"a"}'],
    ['zone in { }', 'zone in {}'],
    ["zone starts with'a'", 'zone starts with "a"'],
    ['has( zone )', 'has(zone)'],
  ])('%j prints as %s', (text, want) => {
    expect(canonical(text)).toBe(want);
  });

  it.each([
    "a == 'x' || b == 'y' && c == 'z'",
    "!(a in {'q', \"p\"} || b not in {}) && c contains '\"'",
    "(x ends with 'y' || has(z)) && !all()",
    `k == "it's"`,
  ])('%s reads back as itself', (text) => {
    const once = canonical(text);
    expect(canonical(once)).toBe(once);
  });
});

describe('errors name the position and what was expected', () => {
  const OPS = '==, !=, in, not in, contains, starts with or ends with';
  const KEY_CHARS = '(use A-Z, a-z, 0-9, _, ., / and -)';

  it.each<[string, string, number, string]>([
    ['unterminated string', "zone == 'a", 8, "unterminated string: expected a closing '"],
    ['unterminated string', 'zone in {"a", "b}', 14, 'unterminated string: expected a closing "'],
    ['missing operand', 'label == foo', 9, 'expected a quoted string after =='],
    ['missing operand', 'zone ==', 7, 'expected a quoted string after =='],
    ['missing operand', "zone == 'a' &&", 14, 'expected an expression after &&'],
    ['missing operand', "|| zone == 'a'", 0, 'expected an expression'],
    ['missing operand', '!', 1, 'expected an expression after !'],
    ['missing operand', "zone in 'a'", 8, 'expected { after in'],
    ['missing operand', 'has()', 4, 'expected a label key after has('],
    ['missing operand', 'zone', 4, `expected an operator after zone: ${OPS}`],
    ['unknown operator', "zone = 'a'", 5, `expected an operator after zone: ${OPS}`],
    ['unknown operator', "zone like 'a'", 5, `expected an operator after zone: ${OPS}`],
    ['unknown operator', "zone starts 'a'", 12, 'expected with after starts'],
    ['unknown operator', "zone not {'a'}", 9, 'expected in after not'],
    ['unknown operator', 'has(a) & has(b)', 7, 'expected &&, || or the end of the selector'],
    ['unknown function', 'any()', 0, 'unknown function any(): expected all(), global() or has(key)'],
    ['unbalanced parens', "(zone == 'a'", 12, 'expected &&, || or ) to close the ( at position 0'],
    ['unbalanced parens', 'has(a) && (has(b) || (has(c))', 29, 'expected &&, || or ) to close the ( at position 10'],
    ['unbalanced parens', "zone == 'a')", 11, 'unmatched ): expected &&, || or the end of the selector'],
    ['unbalanced parens', 'has(a', 5, 'expected ) after has(a'],
    ['unbalanced parens', 'all(', 4, 'expected ) after all('],
    ['trailing tokens', "zone == 'a' rack == 'b'", 12, 'expected &&, || or the end of the selector'],
    ['trailing tokens', "(zone == 'a' rack)", 13, 'expected &&, || or ) to close the ( at position 0'],
    ['trailing tokens', 'all() x', 6, 'expected &&, || or the end of the selector'],
    ['bad set', "zone in {'a' 'b'}", 13, 'expected , or } to close the { at position 8'],
    ['bad set', "zone in {'a',}", 13, 'expected a quoted string after ,'],
    ['bad set', 'zone in {a}', 9, 'expected a quoted string or } after {'],
    ['bad label char', "zo$ne == 'a'", 2, `label key: $ is not allowed ${KEY_CHARS}`],
    ['bad label char', "zone:x == 'a'", 4, `label key: : is not allowed ${KEY_CHARS}`],
    ['bad label char', "@zone == 'a'", 0, `label key: @ is not allowed ${KEY_CHARS}`],
    ['bad label char', "zöne == 'a'", 1, `label key: ö is not allowed ${KEY_CHARS}`],
    ['bad label char', 'has(a*)', 5, `label key: * is not allowed ${KEY_CHARS}`],
    ['bad whitespace', "zone == 'a'\n", 11, 'whitespace U+000A: only spaces and tabs may separate tokens'],
    ['bad whitespace', "zone\r\n== 'a'", 4, 'whitespace U+000D: only spaces and tabs may separate tokens'],
  ])('%s: %j fails at %i', (_kind, text, position, problem) => {
    const e = errorOf(text);
    expect(e.position).toBe(position);
    expect(e.problem).toBe(problem);
    expect(e.message).toBe(`at position ${position}: ${problem}`);
  });

  it('rejects a key longer than 512 characters at its start', () => {
    const e = errorOf(`has(a) && ${'k'.repeat(513)} == 'v'`);
    expect(e.position).toBe(10);
    expect(e.message).toBe('at position 10: label key: longer than 512 characters');
  });

  it('caps nesting rather than running out of stack', () => {
    expect(canonical(`${'('.repeat(100)}has(a)${')'.repeat(100)}`)).toBe('has(a)');
    const e = errorOf(`${'('.repeat(101)}has(a)${')'.repeat(101)}`);
    expect(e.position).toBe(100);
    expect(e.message).toBe('at position 100: nesting: deeper than 100 parentheses');
  });

  it('is an Error named SelectorError', () => {
    const e = errorOf('zone ==');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('SelectorError');
  });
});

describe('selectorProblem', () => {
  it.each(['', 'all()', "zone == 'a' && !has(rack)"])('%j has no problem', (text) => {
    expect(selectorProblem(text)).toBeUndefined();
  });

  it('returns the error message of a bad selector', () => {
    expect(selectorProblem('label == foo')).toBe('at position 9: expected a quoted string after ==');
  });
});
