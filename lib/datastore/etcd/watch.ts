// A watch over POST /v3/watch: one HTTP stream per watch (the gateway reads only the first message of a
// request, so one create_request per connection, and closing the connection cancels it). When the stream
// breaks, the watch reconnects (to another endpoint if need be) and resumes at the revision after the
// last event seen, so the caller sees every event once, in order. A compacted start revision ends it
// with EtcdCompactedError (the caller reads everything again); so does failing to reconnect in time,
// with EtcdUnavailableError.
import { log } from '../../log';
import { Auth, authRequired } from './auth';
import type { Endpoints, Attempt } from './failover';
import { Retryable } from './failover';
import { EtcdCompactedError, EtcdError } from './errors';
import type { Redactor } from './redact';
import { checkReply, ServerError, serverError, tokenRejected, transient } from './reply';
import type { StreamEnd, Transport } from './transport';
import { decodeKv, encodeRange } from './wire';
import type { Int64, KeyRange, RawKeyValue } from './wire';

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value (puts only). */
  value?: string;
  modRevision: Int64;
}

export interface WatchHandle {
  /** Settles when etcd has confirmed the watch (rejects if the first connection fails). */
  readonly ready: Promise<void>;
  /** The revision the watch would resume from: one past the last event delivered. */
  readonly nextRevision: Int64 | undefined;
  close(): void;
}

export type OnEvents = (events: WatchEvent[], revision: Int64) => void;
/** Called once when the watch ends on its own; it is closed by then. */
export type OnError = (err: Error) => void;

export interface WatchDeps {
  endpoints: Endpoints;
  transport: Transport;
  auth: Auth;
  redact: Redactor;
}

interface RawEvent {
  type?: 'PUT' | 'DELETE';
  kv?: RawKeyValue;
}

// Ask etcd to end the stream when its member loses the leader (clientv3's WithRequireLeader), rather
// than leave us on a member cut off from the cluster. grpc-gateway passes Grpc-Metadata-* headers on.
const REQUIRE_LEADER = { 'grpc-metadata-hasleader': 'true' };
const RECONNECT_PAUSE_MS = 200;
const CLOSED = new Error('watch closed');

export class Watch implements WatchHandle {
  readonly ready: Promise<void>;
  private next: bigint | undefined;
  private closed = false;
  private stop: (() => void) | undefined;
  private connectedAt = 0;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;

  constructor(
    private readonly deps: WatchDeps,
    private readonly range: string | KeyRange,
    startRevision: Int64 | undefined,
    private readonly onEvents: OnEvents,
    private readonly onError: OnError,
  ) {
    this.next = startRevision !== undefined ? BigInt(startRevision) : undefined;
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => undefined); // a caller that ignores `ready` hears of failures through onError
    void this.reconnect();
  }

  get nextRevision(): Int64 | undefined {
    return this.next?.toString();
  }

  close(): void {
    this.closed = true;
    this.stop?.();
    this.stop = undefined;
  }

  private async reconnect(): Promise<void> {
    // A stream that keeps ending right after it was set up must not turn into a busy loop.
    const since = Date.now() - this.connectedAt;
    if (since < RECONNECT_PAUSE_MS) await new Promise((r) => setTimeout(r, RECONNECT_PAUSE_MS - since));
    if (this.closed) return;
    this.connectedAt = Date.now();
    try {
      await this.deps.endpoints.run('watch', (a) => this.connect(a));
      this.readyResolve();
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.close();
    this.readyReject(err);
    this.onError(err);
  }

  /** One connection: resolves once etcd confirms the watch; later trouble goes to `lost` or `fail`. */
  private async connect(a: Attempt): Promise<void> {
    if (this.closed) throw CLOSED; // not Retryable: stops the failover loop
    const headers = { ...(await this.deps.auth.headers(a)), ...REQUIRE_LEADER };
    const create: Record<string, unknown> = encodeRange(this.range);
    if (this.next !== undefined) create.start_revision = this.next.toString();
    return new Promise<void>((resolve, reject) => {
      let created = false;
      const timer = setTimeout(() => {
        stop();
        reject(new Retryable(`no answer within ${a.timeoutMs} ms`, false));
      }, a.timeoutMs);
      const settle = (err?: unknown): void => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const stop = this.deps.transport.stream(a.endpoint, '/v3/watch', { create_request: create }, headers, {
        message: (msg) => {
          const problem = this.handle(msg, headers);
          if (!created) {
            if (problem) return settle(problem);
            if (msg?.result?.created) {
              created = true;
              if (this.closed) stop();
              else this.stop = stop;
              settle();
            }
          } else if (problem) {
            stop();
            this.lost(problem, a);
          }
        },
        end: (how) => {
          const problem = this.ended(how, a, headers);
          if (!created) settle(problem);
          else if (!this.closed) this.lost(problem, a);
        },
      });
    });
  }

  /** Delivers a message's events; returns why the stream can no longer be used, if it cannot. */
  private handle(msg: any, headers: Record<string, string>): unknown {
    if (this.closed) return undefined;
    const err = serverError(msg);
    if (err) return this.problem(err, headers);
    const r = msg?.result;
    if (!r) return new Retryable('unexpected watch message', false);
    if (r.canceled) {
      if (r.compact_revision && r.compact_revision !== '0') return new EtcdCompactedError(r.compact_revision);
      return this.problem({ message: String(r.cancel_reason ?? 'etcdserver: watch canceled') }, headers);
    }
    if (r.created && this.next === undefined) {
      // No start revision: the watch begins after the revision current at creation.
      this.next = BigInt(r.header?.revision ?? '0') + 1n;
    }
    const raw: RawEvent[] = r.events ?? [];
    if (raw.length === 0) return undefined;
    const events = raw.map(decodeEvent);
    this.next = BigInt(events[events.length - 1].modRevision) + 1n;
    try {
      this.onEvents(events, r.header?.revision ?? events[events.length - 1].modRevision);
    } catch (e) {
      // The caller could not take the events: stop here rather than skip them.
      this.fail(e as Error);
    }
    return undefined;
  }

  /** An error etcd sent, or its reason to cancel: worth another connection, or the end of the watch. */
  private problem(err: ServerError, headers: Record<string, string>): unknown {
    if (tokenRejected(err)) {
      if (!this.deps.auth.configured) return authRequired();
      this.deps.auth.rejected(headers);
      return new Retryable('auth token rejected', false);
    }
    const reason = this.deps.redact.scrub(err.message);
    if (transient(err)) return new Retryable(reason, false);
    return new EtcdError(`etcd: watch canceled: ${reason}`);
  }

  private ended(how: StreamEnd, a: Attempt, headers: Record<string, string>): unknown {
    if (how.failure) return new Retryable(how.failure.reason, false, how.failure.kind === 'tls');
    if (!how.reply) return new Retryable('stream ended', false);
    const err = serverError(how.reply.json);
    if (err) return this.problem(err, headers);
    try {
      checkReply(how.reply, a.endpoint, 'watch', this.deps.redact);
      return new Retryable('stream ended', false);
    } catch (e) {
      return e;
    }
  }

  /** The stream broke after it was set up: resume elsewhere, or end with the reason. */
  private lost(problem: unknown, a: Attempt): void {
    this.stop = undefined;
    if (this.closed) return;
    if (!(problem instanceof Retryable)) return this.fail(problem as Error);
    log.debug(`etcd: watch stream on ${a.endpoint.label} lost (${problem.reason}); resuming at ${this.next}`);
    void this.reconnect();
  }
}

function decodeEvent(e: RawEvent): WatchEvent {
  const kv = decodeKv(e.kv ?? {});
  if (e.type === 'DELETE') return { type: 'delete', key: kv.key, modRevision: kv.modRevision };
  return { type: 'put', key: kv.key, value: kv.value, modRevision: kv.modRevision };
}
