import { documentsFromText } from './calico';

/**
 * Incremental parsing of a cluster file for a long-running process: the text is split into its YAML
 * documents without the parser, and only documents whose text was not in the previous version are parsed.
 * A one-document change to a file of 10,000 documents parses one document.
 */

/** A line that is only a document marker, with maybe a comment. */
const MARKER = /^---(?:[ \t]+(?:#.*)?)?\r?$/;
/** A line that holds something other than blanks and a comment. */
const CONTENT = /^[ \t\r]*[^ \t\r\n#]/m;

const hasContent = (chunk: string): boolean => CONTENT.test(chunk);

/**
 * The texts of the documents of `text`, counted as the YAML parser counts them: one after each `---` line,
 * and one before the first only when something but comments is there. Undefined when the text uses what a
 * split on lines cannot follow safely: directives (`%`), document end markers (`...`), content on a `---`
 * line, a byte order mark, or JSON (which is read whole).
 */
export function splitDocuments(text: string): string[] | undefined {
  const lead = text.trimStart()[0];
  if (lead === '{' || lead === '[' || text.startsWith('\ufeff')) return undefined;
  const chunks: string[] = [];
  let start = 0; // where the current document's text begins
  let marked = false; // whether a `---` line opened it
  for (let at = 0; at < text.length;) {
    const nl = text.indexOf('\n', at);
    const end = nl < 0 ? text.length : nl;
    const c = text[at];
    // Only lines starting with one of these can be markers or directives: the others cost one comparison.
    if (c === '-' || c === '.' || c === '%') {
      const line = text.slice(at, end);
      if (MARKER.test(line)) {
        const chunk = text.slice(start, at);
        if (marked || hasContent(chunk)) chunks.push(chunk);
        start = end + 1;
        marked = true;
      } else if (c === '%' || line.startsWith('---') || line.startsWith('...')) {
        return undefined;
      }
    }
    at = end + 1;
  }
  const last = text.slice(start);
  if (marked || hasContent(last)) chunks.push(last);
  return chunks;
}

interface Entry {
  /** The document's text, copied out of the file's text so that keeping it does not keep the whole file. */
  text: string;
  doc: unknown;
}

/** What the last `documents` call did. */
export interface ParseStats {
  /** Documents handed to the YAML parser. */
  parsed: number;
  /** Documents whose text was known: the value parsed before is returned again. */
  reused: number;
  /** The text was parsed whole (it could not be split safely, or a document had a YAML error). */
  whole: boolean;
}

/**
 * Parsed documents by their text. The values it returns are frozen and shared between calls (an unchanged
 * document is the same object every time, so what is derived from it can be remembered too). It keeps only
 * the documents of the latest text, so its memory follows the file's size.
 */
export class DocumentCache {
  private entries = new Map<string, Entry>();
  /** The entry of each document of the latest text, in order (undefined: an empty document). */
  private order: (Entry | undefined)[] = [];
  private stats: ParseStats = { parsed: 0, reused: 0, whole: false };

  get size(): number {
    return this.entries.size;
  }

  get last(): Readonly<ParseStats> {
    return this.stats;
  }

  /** The documents of `text`; errors are those of a whole parse (`cluster file: document N ...`). */
  async documents(text: string): Promise<unknown[]> {
    const chunks = splitDocuments(text);
    if (!chunks) return this.whole(text);
    const next = new Map<string, Entry>();
    const order: (Entry | undefined)[] = new Array(chunks.length).fill(undefined);
    const docs: unknown[] = new Array(chunks.length).fill(null);
    const todo: number[] = [];
    const shift = this.order.length - chunks.length;
    chunks.forEach((chunk, i) => {
      const known = this.known(chunk, i, shift);
      if (known) {
        next.set(known.text, known);
        order[i] = known;
        docs[i] = known.doc;
      } else if (hasContent(chunk)) {
        todo.push(i);
      } // else an empty document: null, as the parser gives
    });
    this.stats = { parsed: todo.length, reused: chunks.length - todo.length, whole: false };
    if (todo.length) {
      const { parseDocument } = await import('yaml'); // loaded only when a document is new
      for (const i of todo) {
        const own = detach(chunks[i]);
        const d = parseDocument(own);
        // A whole parse names the document and the line in the file, as a one-shot parse does.
        let doc: unknown;
        try {
          doc = d.errors.length ? undefined : d.toJS(); // toJS throws on an alias bomb
        } catch {
          doc = undefined;
        }
        if (doc === undefined) return this.whole(text);
        const entry = { text: own, doc: deepFreeze(doc) };
        next.set(own, entry);
        order[i] = entry;
        docs[i] = entry.doc;
      }
    }
    this.entries = next;
    this.order = order;
    return docs;
  }

  /**
   * The entry of a document text seen last time. Most edits change, add or remove a few documents: the one at
   * the same place, or at the same distance from the end, is compared first, which costs less than hashing.
   */
  private known(chunk: string, i: number, shift: number): Entry | undefined {
    const same = this.order[i];
    if (same?.text === chunk) return same;
    const fromEnd = this.order[i + shift];
    if (fromEnd?.text === chunk) return fromEnd;
    return this.entries.get(chunk);
  }

  /** The text parsed whole. What is cached stays as it was when this throws: a fix then parses one document. */
  private async whole(text: string): Promise<unknown[]> {
    const docs = await documentsFromText(text);
    this.entries = new Map();
    this.order = [];
    this.stats = { parsed: docs.length, reused: 0, whole: true };
    return docs;
  }
}

/** A copy of `s` that shares no memory with the string it was sliced from (V8 keeps the parent of a slice). */
const detach = (s: string): string => JSON.parse(JSON.stringify(s)) as string;

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
