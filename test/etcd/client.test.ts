// The dependency-free etcd client (lib/datastore/etcd) against real etcd 3.4 processes: the key-value
// API, transactions, watches, leases, failover between three members, TLS client certificates,
// password auth, and the promise that no message or log line carries a secret or an endpoint URL.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { log } from '../../lib/log';
import { EtcdClient } from '../../lib/datastore/etcd/client';
import {
  EtcdAuthError,
  EtcdCompactedError,
  EtcdLeaseNotFoundError,
  EtcdTlsError,
  EtcdUnavailableError,
} from '../../lib/datastore/etcd/errors';
import { cmp, op } from '../../lib/datastore/etcd/txn';
import type { WatchEvent } from '../../lib/datastore/etcd/watch';
import { EtcdCluster, startEtcd, stopAllEtcd } from '../helpers/etcd';

afterAll(stopAllEtcd);

/** Polls `fn` until it returns something truthy; fails after `timeoutMs` with `what`. */
async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A 127.0.0.1 URL where nothing listens (a port that was free a moment ago). */
async function deadEndpoint(): Promise<string> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return `http://127.0.0.1:${port}`;
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('one member', () => {
  let etcd: EtcdCluster;
  let client: EtcdClient;

  beforeAll(async () => {
    etcd = await startEtcd();
    client = new EtcdClient({ endpoints: etcd.endpoints });
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('puts, gets, ranges over a prefix and deletes a prefix', async () => {
    const { revision } = await client.put('kv/a', 'alpha');
    await client.put('kv/b', 'béta ✓');
    await client.put('kv/c/d', 'delta');
    await client.put('kw', 'outside the prefix');

    const a = await client.get('kv/a');
    expect(a).toMatchObject({ key: 'kv/a', value: 'alpha', version: '1' });
    expect([a?.createRevision, a?.modRevision]).toEqual([revision, revision]);
    expect(await client.get('kv/missing')).toBeUndefined();

    const all = await client.range('kv/');
    expect(all.kvs.map((kv) => [kv.key, kv.value])).toEqual([
      ['kv/a', 'alpha'],
      ['kv/b', 'béta ✓'],
      ['kv/c/d', 'delta'],
    ]);
    expect(BigInt(all.revision)).toBeGreaterThanOrEqual(BigInt(revision));

    const keys = await client.range('kv/', { keysOnly: true, limit: 2 });
    expect(keys.kvs.map((kv) => [kv.key, kv.value])).toEqual([
      ['kv/a', ''],
      ['kv/b', ''],
    ]);
    expect(keys).toMatchObject({ count: 3, more: true });

    const then = await client.range({ key: 'kv/a', rangeEnd: 'kv/b' }, { revision });
    expect(then.kvs.map((kv) => kv.key)).toEqual(['kv/a']);

    expect((await client.delete('kv/a')).deleted).toBe(1);
    expect((await client.delete({ prefix: 'kv/' })).deleted).toBe(2);
    expect((await client.range('kv/')).kvs).toEqual([]);
    expect((await client.get('kw'))?.value).toBe('outside the prefix');
    expect((await client.range('')).kvs.map((kv) => kv.key)).toContain('kw'); // the empty prefix: every key
  });

  it('createIfAbsent refuses the second create and shows what is there', async () => {
    const first = await client.createIfAbsent('cia/x', 'one');
    expect(first.succeeded).toBe(true);
    const second = await client.createIfAbsent('cia/x', 'two');
    expect(second.succeeded).toBe(false);
    expect(second.current).toMatchObject({ key: 'cia/x', value: 'one', modRevision: first.revision });
    expect((await client.get('cia/x'))?.value).toBe('one');
  });

  it('compareAndSwap refuses a stale revision', async () => {
    const { revision: r1 } = await client.put('cas/x', 'v1');
    const swapped = await client.compareAndSwap('cas/x', 'v2', r1);
    expect(swapped.succeeded).toBe(true);
    const stale = await client.compareAndSwap('cas/x', 'v3', r1);
    expect(stale.succeeded).toBe(false);
    expect(stale.current).toMatchObject({ value: 'v2', modRevision: swapped.revision });
    expect((await client.get('cas/x'))?.value).toBe('v2');
  });

  it('txn takes the failure branch and returns the current value', async () => {
    await client.put('txn/k', 'current');
    const res = await client.txn({
      compare: [cmp.value('txn/k', 'expected')],
      success: [op.put('txn/k', 'new')],
      failure: [op.range('txn/k'), op.put('txn/other', 'failure ran')],
    });
    expect(res.succeeded).toBe(false);
    expect(res.responses[0]).toMatchObject({ type: 'range', kvs: [{ key: 'txn/k', value: 'current' }] });
    expect(res.responses[1].type).toBe('put');
    expect((await client.get('txn/other'))?.value).toBe('failure ran');

    const ok = await client.txn({
      compare: [cmp.value('txn/k', 'current'), cmp.absent('txn/none')],
      success: [op.put('txn/k', 'new'), op.delete('txn/other')],
    });
    expect(ok.succeeded).toBe(true);
    expect(ok.responses[1]).toMatchObject({ type: 'delete', deleted: 1 });
  });

  it('20 concurrent createIfAbsent on one key: exactly one wins', async () => {
    const racers = Array.from({ length: 20 }, (_, i) => client.createIfAbsent('race/key', `racer-${i}`));
    const results = await Promise.all(racers);
    const winners = results.flatMap((r, i) => (r.succeeded ? [i] : []));
    expect(winners).toHaveLength(1);
    expect((await client.get('race/key'))?.value).toBe(`racer-${winners[0]}`);
    for (const r of results.filter((x) => !x.succeeded)) expect(r.current?.value).toBe(`racer-${winners[0]}`);
  });

  it('a watch sees puts and deletes in order', async () => {
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    const w = client.watch(
      'watch/',
      {},
      (ev) => events.push(...ev),
      (e) => errors.push(e),
    );
    await w.ready;
    await client.put('watch/a', '1');
    await client.put('watch/b', '2');
    await client.delete('watch/a');
    await client.put('watch/a', '3');
    await client.put('not-watched', 'x');
    await client.txn({ compare: [], success: [op.put('watch/c', '4'), op.delete('watch/b')] });
    await until('six events', () => events.length >= 6);
    w.close();
    expect(events.map((e) => [e.type, e.key, e.value])).toEqual([
      ['put', 'watch/a', '1'],
      ['put', 'watch/b', '2'],
      ['delete', 'watch/a', undefined],
      ['put', 'watch/a', '3'],
      ['put', 'watch/c', '4'],
      ['delete', 'watch/b', undefined],
    ]);
    const revs = events.map((e) => BigInt(e.modRevision));
    expect(revs.slice(0, 4).every((r, i) => i === 0 || r > revs[i - 1])).toBe(true);
    expect(revs[4]).toBe(revs[5]); // one txn, one revision
    expect(errors).toEqual([]);
  });

  it('a watch replays history from startRevision', async () => {
    const { revision: start } = await client.put('replay/a', '1');
    await client.put('replay/a', '2');
    const seen: string[] = [];
    const onEvents = (ev: WatchEvent[]) => seen.push(...ev.map((e) => e.value!));
    const w = client.watch('replay/', { startRevision: start }, onEvents, () => {});
    await until('two replayed events', () => seen.length >= 2);
    w.close();
    expect(seen).toEqual(['1', '2']);
    expect(w.nextRevision).toBe(String(BigInt(start) + 2n));
  });

  it('a compacted start revision raises EtcdCompactedError', async () => {
    const { revision: old } = await client.put('compact/a', '1');
    const { revision: now } = await client.put('compact/a', '2');
    await client.compact(now);
    const errors: Error[] = [];
    const events: WatchEvent[] = [];
    client.watch(
      'compact/',
      { startRevision: old },
      (ev) => events.push(...ev),
      (e) => errors.push(e),
    );
    const err = await until('the watch error', () => errors[0]);
    expect(err).toBeInstanceOf(EtcdCompactedError);
    expect((err as EtcdCompactedError).compactRevision).toBe(now);
    expect(events).toEqual([]);
    expect(errors).toHaveLength(1);
  });

  it('leases: keys go when the lease expires, keepAlive refreshes, revoke deletes', async () => {
    const short = await client.grant(1);
    expect(short.id).toMatch(/^\d+$/);
    expect(BigInt(short.id)).toBeGreaterThan(0n);
    await client.put('lease/short', 'x', { lease: short.id });
    expect((await client.get('lease/short'))?.lease).toBe(short.id);
    await until('the leased key to expire', async () => !(await client.get('lease/short')), 15_000);
    await expect(client.keepAlive(short.id)).rejects.toBeInstanceOf(EtcdLeaseNotFoundError);
    await expect(client.put('lease/late', 'x', { lease: short.id })).rejects.toBeInstanceOf(EtcdLeaseNotFoundError);

    const long = await client.grant(60);
    await client.put('lease/long', 'y', { lease: long.id });
    expect(await client.keepAlive(long.id)).toBeGreaterThan(50);
    await client.revoke(long.id);
    expect(await client.get('lease/long')).toBeUndefined();
    await client.revoke(long.id); // already gone: fine
  });

  it('status answers', async () => {
    const st = await client.status();
    expect(st.version).toMatch(/^3\.4\./);
    expect(st.leader).toBe(st.memberId);
  });

  it('a bad caFile is a config error naming the field', () => {
    const https = etcd.endpoints.map((u) => u.replace('http:', 'https:'));
    expect(() => new EtcdClient({ endpoints: https, caFile: '/nonexistent/ca.pem' })).toThrow(
      /datastore\.caFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/,
    );
    expect(() => new EtcdClient({ endpoints: ['etcd:2379'] })).toThrow(/datastore\.endpoints\[0\]/);
  });
});

describe('unreachable', () => {
  it('all endpoints down: EtcdUnavailableError (code 11) within the bound', async () => {
    const endpoints = [await deadEndpoint(), await deadEndpoint(), await deadEndpoint()];
    const client = new EtcdClient({ endpoints, timeoutMs: 1000 });
    const t0 = Date.now();
    const err = await caught(client.put('x', 'y'));
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(EtcdUnavailableError);
    expect((err as EtcdUnavailableError).code).toBe(11);
    expect(err.message).toMatch(/^etcd: put: no answer from any of the 3 etcd endpoints within 1000 ms/);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(1500);

    const byDefault = new EtcdClient({ endpoints: endpoints.slice(0, 1) });
    const t1 = Date.now();
    expect(await caught(byDefault.get('x'))).toBeInstanceOf(EtcdUnavailableError);
    expect(Date.now() - t1).toBeLessThan(5600);
  });
});

describe('three members', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
  });
  afterAll(() => etcd?.stop());

  it('puts go on while the leader is SIGKILLed; a watch resumes without losing or repeating events', async () => {
    const leader = await etcd.leader();
    // The leader first, so the client starts there and must fail over.
    const endpoints = [leader.clientUrl, ...etcd.endpoints.filter((u) => u !== leader.clientUrl)];
    const client = new EtcdClient({ endpoints });
    const watched: WatchEvent[] = [];
    const watchErrors: Error[] = [];
    const w = client.watch(
      'fo/',
      {},
      (ev) => watched.push(...ev),
      (e) => watchErrors.push(e),
    );
    await w.ready;

    const N = 60;
    const slowest = { ms: 0 };
    let done = 0;
    const writer = (async () => {
      for (let i = 0; i < N; i++) {
        const t0 = Date.now();
        await client.put(`fo/${String(i).padStart(3, '0')}`, `v${i}`);
        slowest.ms = Math.max(slowest.ms, Date.now() - t0);
        done++;
      }
    })();
    await until('10 puts', () => done >= 10);
    await leader.kill('SIGKILL');
    await writer; // any error here fails the test: none may surface

    const all = await client.range('fo/');
    expect(all.kvs).toHaveLength(N);
    expect(slowest.ms).toBeLessThan(5000);
    // A put that timed out on a follower during the election may have been applied as well as its retry:
    // then etcd holds two writes of that value, and the watch must show both, each once, in order.
    const lastRev = (await client.get(`fo/${String(N - 1).padStart(3, '0')}`))!.modRevision;
    await until('the watch to catch up', () => watched.some((e) => e.modRevision === lastRev), 15_000);
    const revs = watched.map((e) => BigInt(e.modRevision));
    expect(revs.every((r, i) => i === 0 || r > revs[i - 1])).toBe(true); // nothing repeated, in order
    expect([...new Set(watched.map((e) => e.value))]).toEqual(Array.from({ length: N }, (_, i) => `v${i}`));
    expect(watched.length - N).toBeLessThanOrEqual(2);
    expect(watchErrors).toEqual([]);
    w.close();
    client.close();
  });
});

describe('TLS with client certificates', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await startEtcd({ tls: true });
  });
  afterAll(() => etcd?.stop());

  it('works with the client certificate', async () => {
    const f = etcd.tlsFiles!;
    const client = new EtcdClient({ endpoints: etcd.endpoints, caFile: f.ca, certFile: f.cert, keyFile: f.key });
    await client.put('tls/a', 'secure');
    expect((await client.get('tls/a'))?.value).toBe('secure');
    const seen: string[] = [];
    const w = client.watch(
      'tls/',
      {},
      (ev) => seen.push(...ev.map((e) => e.value!)),
      () => {},
    );
    await w.ready;
    await client.put('tls/b', 'watched');
    await until('the watch event', () => seen.includes('watched'));
    w.close();
    client.close();
  });

  it('without a client certificate it fails at once with a clear message', async () => {
    const client = new EtcdClient({ endpoints: etcd.endpoints, caFile: etcd.tlsFiles!.ca });
    const t0 = Date.now();
    const err = await caught(client.get('tls/a'));
    expect(err).toBeInstanceOf(EtcdTlsError);
    expect(err.message).toMatch(/^etcd: TLS handshake failed: .*(certificate required|bad certificate)/);
    expect(err.message).toMatch(/set datastore\.certFile and datastore\.keyFile/);
    expect(err.message).not.toMatch(/\/tmp|127\.0\.0\.1|https:/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('without the CA, the server certificate is not trusted', async () => {
    const f = etcd.tlsFiles!;
    const client = new EtcdClient({ endpoints: etcd.endpoints, certFile: f.cert, keyFile: f.key });
    const err = await caught(client.get('tls/a'));
    expect(err).toBeInstanceOf(EtcdTlsError);
    expect(err.message).toMatch(/^etcd: TLS handshake failed: server certificate: /);
  });
});

describe('password auth', () => {
  const password = 'pa55-Word-9f3c1e';
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await startEtcd({ auth: { user: 'tabby', password } });
  });
  afterAll(() => etcd?.stop());

  it('works with the right password, and re-authenticates when the token is forgotten', async () => {
    const client = new EtcdClient({ endpoints: etcd.endpoints, username: 'tabby', password });
    await client.put('auth/a', '1');
    expect((await client.get('auth/a'))?.value).toBe('1');
    const seen: string[] = [];
    const w = client.watch(
      'auth/',
      {},
      (ev) => seen.push(...ev.map((e) => e.value!)),
      () => {},
    );
    await w.ready;
    // A restarted member has forgotten every token: the client's is rejected once, then renewed.
    await etcd.members[0].restart();
    await client.put('auth/b', '2');
    expect((await client.get('auth/b'))?.value).toBe('2');
    await until('the watch to resume', () => seen.includes('2'), 15_000);
    w.close();
    client.close();
  });

  it('a wrong password gives a clear error', async () => {
    const client = new EtcdClient({ endpoints: etcd.endpoints, username: 'tabby', password: 'wrong' });
    const err = await caught(client.get('auth/a'));
    expect(err).toBeInstanceOf(EtcdAuthError);
    expect(err.message).toBe('etcd: authentication failed (wrong username or password)');
  });

  it('no credentials against an auth-enabled etcd says so', async () => {
    const client = new EtcdClient({ endpoints: etcd.endpoints });
    const err = await caught(client.get('auth/a'));
    expect(err).toBeInstanceOf(EtcdAuthError);
    expect(err.message).toMatch(/requires authentication/);
    const errors: Error[] = [];
    const w = client.watch(
      'auth/',
      {},
      () => {},
      (e) => errors.push(e),
    );
    expect(await caught(w.ready)).toBeInstanceOf(EtcdAuthError);
    expect(errors).toHaveLength(1);
  });
});

// Last: it sends this worker's log to a file at debug level.
describe('secrets stay out of errors and logs', () => {
  const password = 'S3cret-Pass-77ab';
  let etcd: EtcdCluster;
  let logDir: string;

  beforeAll(async () => {
    etcd = await startEtcd({ members: 3, tls: true, auth: { user: 'root', password } });
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabby-etcdlog-'));
  });
  const stderr: string[] = [];
  const write = process.stderr.write;
  afterAll(() => {
    process.stderr.write = write;
    log.configure({ level: 'info' });
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  it('never shows the password, the token, key material or an endpoint URL', async () => {
    const logFile = path.join(logDir, 'tabby.log');
    log.configure({ file: logFile, level: 'debug', stderrLevel: 'error' });
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: any[]) => {
      stderr.push(String(chunk));
      return write.call(process.stderr, chunk, ...rest);
    }) as typeof process.stderr.write;
    const f = etcd.tlsFiles!;
    const dead = (await deadEndpoint()).replace('http:', 'https:');
    const endpoints = [dead, ...etcd.endpoints];
    const good = { endpoints, caFile: f.ca, certFile: f.cert, keyFile: f.key, username: 'root', password };
    const messages: string[] = [];
    const note = (e: Error): void => {
      messages.push(e.message, String(e.stack), inspect(e));
    };

    const client = new EtcdClient(good);
    await client.put('s/a', '1'); // fails over from the dead endpoint (logged at debug)
    const token: string = (client as any).auth.token;
    expect(token).toMatch(/\S{8,}/);
    const leaseless = await caught(client.put('s/b', '2', { lease: '12345' }));
    expect(leaseless).toBeInstanceOf(EtcdLeaseNotFoundError);
    note(leaseless);
    note(await caught(client.range('s/', { revision: '999999' }))); // a future revision: etcd refuses
    note(await caught(new EtcdClient({ ...good, password: 'not-' + password }).get('s/a')));
    note(await caught(new EtcdClient({ ...good, certFile: undefined, keyFile: undefined }).get('s/a')));
    note(await caught(new EtcdClient({ ...good, endpoints: [dead], timeoutMs: 500 }).get('s/a')));
    // Restarted members forget every token and reset every connection: failover and re-authentication.
    for (const m of etcd.members) await m.restart();
    await client.put('s/c', '3');
    const token2: string = (client as any).auth.token;
    expect(token2).not.toBe(token);
    client.close();

    const logged = fs.readFileSync(logFile, 'utf8') + stderr.join('');
    expect(logged).toMatch(/failed on etcd endpoint \d of 4/);
    expect(logged).toMatch(/auth token rejected/);
    expect(messages.join('\n')).toMatch(/no answer from the etcd endpoint .*etcd endpoint 1 of 1: ECONNREFUSED/);
    expect(messages.join('\n')).toMatch(/wrong username or password/);
    const keyPem = fs.readFileSync(f.key, 'utf8');
    const forbidden = [
      password,
      token,
      token2,
      ...keyPem.split('\n').filter((l) => l.length > 20),
      ...endpoints,
      ...endpoints.map((u) => new URL(u).host),
      f.ca,
      f.cert,
      f.key,
    ];
    for (const text of [logged, ...messages]) {
      for (const secret of forbidden) expect(text).not.toContain(secret);
    }
  });
});
