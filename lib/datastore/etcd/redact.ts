// Scrubs secrets out of text the client did not write itself (server messages, socket errors) before it
// goes into an error or a log line. Our spec keeps endpoint URLs out of messages too: an endpoint is
// named by its position ("etcd endpoint 2 of 3"), so a log shipped elsewhere does not map the cluster.

export class Redactor {
  // [text to find, what replaces it], longest first so a URL goes before its host
  private rules: [string, string][] = [];

  // Tokens are replaced every few minutes (they expire): keep the last few, not all of them.
  private tokens: string[] = [];

  secret(text: string | undefined): void {
    if (text) this.add(text, '[redacted]');
  }

  token(text: string): void {
    this.tokens = [text, ...this.tokens.filter((t) => t !== text)].slice(0, 4);
  }

  /** An endpoint: its URL and host:port become its label; the bare host (shared by several) a neutral word. */
  endpoint(url: URL, label: string): void {
    this.add(url.href.replace(/\/$/, ''), label);
    this.add(url.host, label);
    if (url.hostname.length > 3) this.add(url.hostname.replace(/^\[|\]$/g, ''), '[etcd host]');
  }

  scrub(text: string): string {
    let out = text;
    for (const t of this.tokens) out = out.split(t).join('[redacted]');
    for (const [find, put] of this.rules) out = out.split(find).join(put);
    return out;
  }

  private add(find: string, put: string): void {
    if (this.rules.some(([f]) => f === find)) return;
    this.rules.push([find, put]);
    this.rules.sort((a, b) => b[0].length - a[0].length);
  }
}
