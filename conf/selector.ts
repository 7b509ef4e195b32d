// Calico's label selector language (libcalico-go/lib/selector), as IPPool `spec.nodeSelector` uses it:
// a parser with positioned errors, matching against a node's labels, and a canonical string form.

/** A parsed selector. */
export interface Selector {
  matches(labels: Record<string, string>): boolean;
  /** The canonical form: normalised spacing and quotes, sorted sets, only the parentheses needed. */
  toString(): string;
}

/** A syntax error; `position` is the 0-based offset in the text (a JavaScript string index). */
export class SelectorError extends Error {
  readonly position: number;
  readonly problem: string;

  constructor(position: number, problem: string) {
    super(`at position ${position}: ${problem}`);
    this.name = 'SelectorError';
    this.position = position;
    this.problem = problem;
  }
}

/** Parses a selector; an empty or all-blank text is `all()`. Throws SelectorError. */
export function parseSelector(text: string): Selector {
  return new Parser(text).parse();
}

/** The syntax problem of a selector, or undefined when it parses. */
export function selectorProblem(text: string): string | undefined {
  try {
    parseSelector(text);
    return undefined;
  } catch (e) {
    if (e instanceof SelectorError) return e.message;
    throw e;
  }
}

// ---- The tree ----

type Labels = Record<string, string>;

// Binding strength, for printing: a child that binds looser than its parent needs parentheses.
const OR = 1;
const AND = 2;
const TERM = 3;

interface Node extends Selector {
  readonly strength: number;
}

// Own properties only: a label named `constructor` must not find Object.prototype's.
const labelOf = (labels: Labels, key: string): string | undefined =>
  Object.hasOwn(labels, key) ? labels[key] : undefined;

// Double quotes unless the value holds one; it cannot hold both, as strings have no escapes.
const quote = (value: string): string => (value.includes('"') ? `'${value}'` : `"${value}"`);

const wrap = (child: Node, parent: number): string => (child.strength < parent ? `(${child})` : `${child}`);

class Always implements Node {
  readonly strength = TERM;
  constructor(private readonly name: 'all' | 'global') {}
  matches(): boolean {
    return true;
  }
  toString(): string {
    return `${this.name}()`;
  }
}

class Has implements Node {
  readonly strength = TERM;
  constructor(private readonly key: string) {}
  matches(labels: Labels): boolean {
    return labelOf(labels, this.key) !== undefined;
  }
  toString(): string {
    return `has(${this.key})`;
  }
}

type CompareOp = '==' | '!=' | 'contains' | 'starts with' | 'ends with';

// A missing label reads as undefined, so only != holds for it.
const COMPARE: Record<CompareOp, (value: string | undefined, operand: string) => boolean> = {
  '==': (v, s) => v === s,
  '!=': (v, s) => v !== s,
  contains: (v, s) => v !== undefined && v.includes(s),
  'starts with': (v, s) => v !== undefined && v.startsWith(s),
  'ends with': (v, s) => v !== undefined && v.endsWith(s),
};

class Compare implements Node {
  readonly strength = TERM;
  constructor(
    private readonly key: string,
    private readonly op: CompareOp,
    private readonly operand: string,
  ) {}
  matches(labels: Labels): boolean {
    return COMPARE[this.op](labelOf(labels, this.key), this.operand);
  }
  toString(): string {
    return `${this.key} ${this.op} ${quote(this.operand)}`;
  }
}

class InSet implements Node {
  readonly strength = TERM;
  private readonly values: Set<string>;
  constructor(
    private readonly key: string,
    values: string[],
    private readonly negated: boolean,
  ) {
    this.values = new Set([...values].sort());
  }
  matches(labels: Labels): boolean {
    const value = labelOf(labels, this.key);
    const found = value !== undefined && this.values.has(value);
    return found !== this.negated;
  }
  toString(): string {
    const items = [...this.values].map(quote).join(', ');
    return `${this.key} ${this.negated ? 'not in' : 'in'} {${items}}`;
  }
}

class Not implements Node {
  readonly strength = TERM;
  constructor(readonly operand: Node) {}
  matches(labels: Labels): boolean {
    return !this.operand.matches(labels);
  }
  toString(): string {
    return `!${wrap(this.operand, TERM)}`;
  }
}

class Junction implements Node {
  constructor(
    readonly strength: typeof AND | typeof OR,
    readonly operands: Node[],
  ) {}
  matches(labels: Labels): boolean {
    return this.strength === AND
      ? this.operands.every((o) => o.matches(labels))
      : this.operands.some((o) => o.matches(labels));
  }
  toString(): string {
    return this.operands.map((o) => wrap(o, this.strength)).join(this.strength === AND ? ' && ' : ' || ');
  }
}

// `!!x` is `x`: negations cancel rather than nest, so a long run of `!` costs nothing.
const negate = (node: Node): Node => (node instanceof Not ? node.operand : new Not(node));

// `(a && b) && c` is `a && b && c`: a junction absorbs children of its own kind.
function junction(strength: typeof AND | typeof OR, parts: Node[]): Node {
  if (parts.length === 1) return parts[0];
  const flat = parts.flatMap((p) => (p instanceof Junction && p.strength === strength ? p.operands : [p]));
  return new Junction(strength, flat);
}

// ---- The parser: recursive descent over the characters, no separate tokenizer ----

const KEY_CHAR = /^[A-Za-z0-9_./-]$/;
const MAX_KEY = 512;
// Deep enough for any real selector, shallow enough that the parser never runs out of stack.
const MAX_DEPTH = 100;
// Characters that start other syntax: glued to a key they mean a missing operator, not a bad key.
const SYNTAX_CHAR = /^[=!<>~()[\]{}&|,'"]$/;
const OPERATORS = '==, !=, in, not in, contains, starts with or ends with';

/** The character at `at` for a message: itself when printable, else its code point. */
function showAt(text: string, at: number): string {
  const code = text.codePointAt(at)!;
  const c = String.fromCodePoint(code);
  return /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(c) ? c : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly text: string) {}

  parse(): Node {
    this.skipSpace();
    if (this.atEnd()) return new Always('all');
    const node = this.parseOr('');
    this.skipSpace();
    if (this.atEnd()) return node;
    if (this.peek() === ')') throw this.fail('unmatched ): expected &&, || or the end of the selector');
    throw this.fail('expected &&, || or the end of the selector');
  }

  // `after` names what came before, for the message when an expression is missing.
  private parseOr(after: string): Node {
    const parts = [this.parseAnd(after)];
    while (this.eat('||')) parts.push(this.parseAnd('||'));
    return junction(OR, parts);
  }

  private parseAnd(after: string): Node {
    const parts = [this.parseUnary(after)];
    while (this.eat('&&')) parts.push(this.parseUnary('&&'));
    return junction(AND, parts);
  }

  private parseUnary(after: string): Node {
    let bangs = 0;
    while (this.eat('!')) bangs++;
    const term = this.parsePrimary(bangs > 0 ? '!' : after);
    return bangs % 2 === 1 ? negate(term) : term;
  }

  private parsePrimary(after: string): Node {
    this.skipSpace();
    const start = this.pos;
    if (this.eat('(')) return this.parseGroup(start);
    const word = this.readWord();
    if (word === '') {
      this.rejectKeyChar();
      throw this.fail(after ? `expected an expression after ${after}` : 'expected an expression');
    }
    if (this.peek() === '(') return this.parseCall(word, start);
    return this.parseComparison(this.checkKey(word, start));
  }

  private parseGroup(open: number): Node {
    if (++this.depth > MAX_DEPTH) throw new SelectorError(open, `nesting: deeper than ${MAX_DEPTH} parentheses`);
    const inner = this.parseOr('(');
    if (!this.eat(')')) throw this.fail(`expected &&, || or ) to close the ( at position ${open}`);
    this.depth--;
    return inner;
  }

  /** `name(` has been read up to the parenthesis. */
  private parseCall(name: string, start: number): Node {
    this.pos++;
    if (name === 'all' || name === 'global') {
      this.close(`${name}(`);
      return new Always(name);
    }
    if (name !== 'has') {
      throw new SelectorError(start, `unknown function ${name}(): expected all(), global() or has(key)`);
    }
    this.skipSpace();
    const keyAt = this.pos;
    const word = this.readWord();
    if (word === '') {
      this.rejectKeyChar();
      throw this.fail('expected a label key after has(');
    }
    const key = this.checkKey(word, keyAt);
    this.close(`has(${key}`);
    return new Has(key);
  }

  private parseComparison(key: string): Node {
    this.skipSpace();
    const at = this.pos;
    if (this.eat('==')) return new Compare(key, '==', this.readString('=='));
    if (this.eat('!=')) return new Compare(key, '!=', this.readString('!='));
    switch (this.readWord()) {
      case 'in':
        return new InSet(key, this.readSet('in'), false);
      case 'notin':
        return new InSet(key, this.readSet('notin'), true);
      case 'not':
        this.expectWord('in', 'not');
        return new InSet(key, this.readSet('not in'), true);
      case 'contains':
        return new Compare(key, 'contains', this.readString('contains'));
      case 'starts':
        this.expectWord('with', 'starts');
        return new Compare(key, 'starts with', this.readString('starts with'));
      case 'ends':
        this.expectWord('with', 'ends');
        return new Compare(key, 'ends with', this.readString('ends with'));
    }
    this.pos = at;
    throw this.fail(`expected an operator after ${key}: ${OPERATORS}`);
  }

  /** A `{'a', "b"}` set, possibly empty. */
  private readSet(after: string): string[] {
    this.skipSpace();
    const open = this.pos;
    if (!this.eat('{')) throw this.fail(`expected { after ${after}`);
    const values: string[] = [];
    if (this.eat('}')) return values;
    if (!this.atQuote()) throw this.fail('expected a quoted string or } after {');
    values.push(this.readString('{'));
    while (!this.eat('}')) {
      if (!this.eat(',')) throw this.fail(`expected , or } to close the { at position ${open}`);
      values.push(this.readString(','));
    }
    return values;
  }

  /** A string in single or double quotes; there are no escapes, so it ends at the next matching quote. */
  private readString(after: string): string {
    this.skipSpace();
    if (!this.atQuote()) throw this.fail(`expected a quoted string after ${after}`);
    const q = this.peek()!;
    const end = this.text.indexOf(q, this.pos + 1);
    if (end < 0) throw this.fail(`unterminated string: expected a closing ${q}`);
    const value = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return value;
  }

  private expectWord(want: string, after: string): void {
    this.skipSpace();
    const at = this.pos;
    if (this.readWord() === want) return;
    this.pos = at;
    throw this.fail(`expected ${want} after ${after}`);
  }

  private close(after: string): void {
    if (!this.eat(')')) throw this.fail(`expected ) after ${after}`);
  }

  /** The run of label-key characters at the cursor (maybe empty); operators and function names are read as one. */
  private readWord(): string {
    const start = this.pos;
    while (!this.atEnd() && KEY_CHAR.test(this.text[this.pos])) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** A key just read: not too long, and not cut short by a character a key may not hold. */
  private checkKey(key: string, start: number): string {
    if (key.length > MAX_KEY) throw new SelectorError(start, `label key: longer than ${MAX_KEY} characters`);
    this.rejectKeyChar();
    return key;
  }

  /** Throws when the cursor is on a character that is neither in a key nor other syntax. */
  private rejectKeyChar(): void {
    const c = this.peek();
    // Whitespace is left to skipSpace, which names it.
    if (c === undefined || SYNTAX_CHAR.test(c) || /\s/.test(c)) return;
    throw this.fail(`label key: ${showAt(this.text, this.pos)} is not allowed (use A-Z, a-z, 0-9, _, ., / and -)`);
  }

  /** Skips blanks and reads `token` when it comes next. */
  private eat(token: string): boolean {
    this.skipSpace();
    if (!this.text.startsWith(token, this.pos)) return false;
    this.pos += token.length;
    return true;
  }

  // Only spaces and tabs separate tokens; other whitespace (a line break from a YAML block) is an error.
  private skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
    const c = this.peek();
    if (c !== undefined && /\s/.test(c)) {
      throw this.fail(`whitespace ${showAt(this.text, this.pos)}: only spaces and tabs may separate tokens`);
    }
  }

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private atQuote(): boolean {
    return this.peek() === "'" || this.peek() === '"';
  }

  private atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  private fail(problem: string): SelectorError {
    return new SelectorError(this.pos, problem);
  }
}
