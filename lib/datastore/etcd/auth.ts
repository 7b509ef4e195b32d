// Password authentication: POST /v3/auth/authenticate once, then the token goes in the Authorization
// header of every call. etcd's simple tokens expire after a few idle minutes (and a restarted member
// forgets them), so a rejected token is dropped and fetched again. Concurrent calls share one fetch.
import { log } from '../../log';
import type { Attempt } from './failover';
import { EtcdAuthError } from './errors';
import type { Redactor } from './redact';
import { checkReply, serverError } from './reply';
import type { Reply } from './transport';

/** etcd has auth on, and the client has no credentials. */
export const authRequired = (): EtcdAuthError =>
  new EtcdAuthError('etcd: etcd requires authentication (set datastore.username and datastore.password)');

/** Sends the authenticate request through one attempt's endpoint (a transport failure is Retryable). */
export type AuthenticateFn = (a: Attempt, body: { name: string; password: string }) => Promise<Reply>;

export class Auth {
  private token: string | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly creds: { username: string; password: string } | undefined,
    private readonly authenticate: AuthenticateFn,
    private readonly redact: Redactor,
  ) {
    redact.secret(creds?.password);
  }

  get configured(): boolean {
    return this.creds !== undefined;
  }

  /** The headers for a call: {} without credentials or when etcd has auth off. */
  async headers(a: Attempt): Promise<Record<string, string>> {
    if (!this.creds) return {};
    if (this.token === undefined) {
      this.pending ??= this.fetch(a).finally(() => (this.pending = undefined));
      this.token = await this.pending;
    }
    return this.token ? { authorization: this.token } : {};
  }

  /** The token in `headers` was refused: the next call authenticates again. */
  rejected(headers: Record<string, string>): void {
    if (this.token !== (headers.authorization ?? '')) return; // another call already replaced it
    log.debug('etcd: auth token rejected (expired, or the member restarted); authenticating again');
    this.token = undefined;
  }

  private async fetch(a: Attempt): Promise<string> {
    const creds = this.creds!;
    const reply = await this.authenticate(a, { name: creds.username, password: creds.password });
    const err = serverError(reply.json);
    if (err && /authentication is not enabled/i.test(err.message)) return ''; // etcd runs without auth
    if (err && /authentication failed|invalid user ID or password/i.test(err.message)) {
      throw new EtcdAuthError('etcd: authentication failed (wrong username or password)');
    }
    const body = checkReply(reply, a.endpoint, 'authenticate', this.redact);
    const token = typeof body?.token === 'string' ? body.token : '';
    if (!token) throw new EtcdAuthError('etcd: authentication answered without a token');
    this.redact.token(token);
    return token;
  }
}
