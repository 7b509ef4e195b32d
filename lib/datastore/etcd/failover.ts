// Failover across etcd endpoints: try the one that answered last, and on a failure that another member
// may not share (no connection, timeout, "no leader", "leader changed", "request timed out") move to the
// next one after a short backoff, until the call's time bound is spent. Then EtcdUnavailableError, which
// a plugin reports as CNI code 11 (try again later).
import { log } from '../../log';
import type { Endpoint } from './config';
import { EtcdTlsError, EtcdUnavailableError } from './errors';

/** A failure worth trying on another endpoint. `sent`: etcd may have applied the request anyway. */
export class Retryable {
  constructor(
    readonly reason: string,
    readonly sent: boolean,
    readonly tls = false,
  ) {}
}

export interface Attempt {
  endpoint: Endpoint;
  /** Time this attempt may take. */
  timeoutMs: number;
  /** An earlier attempt of this call may have been applied: a refused compare may be our own write. */
  maybeApplied: boolean;
}

const BACKOFF_FIRST_MS = 20;
const BACKOFF_MAX_MS = 400;
const MIN_ATTEMPT_MS = 1000;

export class Endpoints {
  private preferred = 0;

  constructor(
    readonly list: readonly Endpoint[],
    readonly timeoutMs: number,
  ) {}

  /**
   * Runs `fn` on endpoints in turn until it returns, throws something not Retryable, or the time
   * bound passes. With several endpoints, an attempt gets its endpoint's share of the bound: a member
   * that hangs (a follower holding a proposal while the cluster elects a new leader) leaves time for others.
   */
  async run<T>(what: string, fn: (a: Attempt) => Promise<T>): Promise<T> {
    const timeoutMs = this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const n = this.list.length;
    const perAttempt = n === 1 ? timeoutMs : Math.max(MIN_ATTEMPT_MS, Math.floor(timeoutMs / n));
    const tlsFailed = new Set<number>();
    let maybeApplied = false;
    let last = '';
    for (let tries = 0, i = this.preferred; ; tries++, i = (i + 1) % n) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const endpoint = this.list[i];
      try {
        const out = await fn({ endpoint, timeoutMs: Math.min(left, perAttempt), maybeApplied });
        if (this.preferred !== i) log.debug(`etcd: now using ${endpoint.label}`);
        this.preferred = i;
        return out;
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        maybeApplied ||= e.sent;
        last = `${endpoint.label}: ${e.reason}`;
        if (e.tls) {
          // A TLS setup problem will not go away by waiting; give up once every endpoint has shown it.
          tlsFailed.add(i);
          if (tlsFailed.size === n) throw new EtcdTlsError(e.reason);
        }
        const pause = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** tries) * (0.5 + Math.random() / 2);
        log.debug(`etcd: ${what} failed on ${last}; retrying in ${Math.round(pause)} ms`);
        await sleep(Math.min(pause, Math.max(0, deadline - Date.now())));
      }
    }
    const of = n === 1 ? 'the etcd endpoint' : `any of the ${n} etcd endpoints`;
    throw new EtcdUnavailableError(`etcd: ${what}: no answer from ${of} within ${timeoutMs} ms (last: ${last})`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
