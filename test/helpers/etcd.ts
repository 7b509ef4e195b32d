// Real etcd for tests: Debian's /usr/bin/etcd (3.4) as child processes on 127.0.0.1, one member or three,
// optionally with TLS client certificates (made with openssl at test time) and password auth (enabled
// with etcdctl). Every member gets free ports and its own temp data dir. stop(), or stopAllEtcd() in
// afterAll, kills every process and removes every dir; so do the 'exit' hook and SIGINT/SIGTERM/SIGHUP
// handlers, and what a SIGKILLed test process left behind is swept at the next start.
// No vitest import: usable from scripts too.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { IP, run, RunResult } from './proc';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';
const OPENSSL = '/usr/bin/openssl';

export interface EtcdMember {
  name: string;
  readonly pid: number;
  clientUrl: string;
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL) and waits until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the member again on the same ports and data dir, and waits until it serves. */
  restart(): Promise<void>;
}

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdCluster {
  endpoints: string[];
  members: EtcdMember[];
  /** The member the cluster currently follows (polls until there is one). */
  leader(): Promise<EtcdMember>;
  stop(): Promise<void>;
  /** Client certificate and CA, when started with tls. */
  tlsFiles?: TlsFiles;
  /** Member logs, for a failing test's message. */
  logs(): string;
  /** Runs etcdctl (API 3) against every member, with the client certificate and the root credentials
   * when the cluster has them, inside the cluster's namespace when it runs in one. */
  ctl(...args: string[]): Promise<RunResult>;
  /** Where the members run: their namespace and listen address (undefined: the root namespace, 127.0.0.1). */
  netns?: string;
  host: string;
  /** The cluster's own directory: each member's data dir and log, the certificates (removed by stop). */
  dir: string;
}

export interface StartOptions {
  members?: 1 | 3;
  tls?: boolean;
  auth?: { user: string; password: string };
  /**
   * Run the members inside this network namespace (`ip netns exec`), serving clients on `host` there
   * (e.g. a router's address that every simulated node reaches); peers talk over the namespace's
   * 127.0.0.1. Health checks and etcdctl run inside it too. Default: the root namespace, 127.0.0.1.
   */
  netns?: string;
  host?: string;
}

const START_DEADLINE_MS = 20_000;
const DIR_PREFIX = 'tabby-etcd-';
const PORT_TRIES = 5;

// Everything still alive in this process, for stopAllEtcd() and the exit hook.
const liveClusters = new Set<Cluster>();
let exitHook = false;

export async function startEtcd(opts: StartOptions = {}): Promise<EtcdCluster> {
  if (!fs.existsSync(ETCD)) throw new Error(`${ETCD} is missing: run test/setup.sh (apt package etcd-server)`);
  let lastError: unknown;
  for (let i = 0; i < PORT_TRIES; i++) {
    installExitHook();
    const cluster = new Cluster(opts);
    liveClusters.add(cluster);
    try {
      await cluster.start();
      return cluster;
    } catch (e) {
      lastError = e;
      await cluster.stop();
      if (!(e instanceof PortConflict)) throw e;
    }
  }
  throw lastError;
}

/** Stops every cluster this process started (for afterAll). */
export async function stopAllEtcd(): Promise<void> {
  await Promise.all([...liveClusters].map((c) => c.stop()));
}

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  sweepOrphans();
  process.on('exit', () => {
    for (const c of liveClusters) c.stopSync();
  });
  // 'exit' does not run when a signal ends the process (a runner killing a worker): clean up, then exit.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const c of liveClusters) c.stopSync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/**
 * Kills members and removes dirs left by a test process that died without cleaning up (SIGKILL).
 * Each cluster dir holds its owner's pid and its members' pids; a member is killed only if its command
 * line still names that dir.
 */
function sweepOrphans(): void {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp).filter((n) => n.startsWith(DIR_PREFIX))) {
    const dir = path.join(tmp, name);
    const owner = Number(readText(path.join(dir, 'owner.pid')));
    if (!owner || alive(owner)) continue;
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.pid') && n !== 'owner.pid')) {
      const pid = Number(readText(path.join(dir, f)));
      if (pid && readText(`/proc/${pid}/cmdline`).includes(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

class PortConflict extends Error {}

class Member implements EtcdMember {
  clientUrl: string;
  peerUrl: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private logFd: number | undefined;

  constructor(
    private readonly cluster: Cluster,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {
    const scheme = cluster.tls ? 'https' : 'http';
    this.clientUrl = `${scheme}://${cluster.host}:${clientPort}`;
    this.peerUrl = `http://127.0.0.1:${peerPort}`;
  }

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get dataDir(): string {
    return path.join(this.cluster.dir, this.name);
  }

  get logFile(): string {
    return path.join(this.cluster.dir, `${this.name}.log`);
  }

  spawn(): void {
    const tls = this.cluster.tlsPaths;
    const args = [
      '--name',
      this.name,
      '--data-dir',
      this.dataDir,
      '--listen-client-urls',
      this.clientUrl,
      '--advertise-client-urls',
      this.clientUrl,
      '--listen-peer-urls',
      this.peerUrl,
      '--initial-advertise-peer-urls',
      this.peerUrl,
      '--initial-cluster',
      this.cluster.initialCluster(),
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      path.basename(this.cluster.dir),
      '--log-level',
      'info',
      ...(tls
        ? [
            '--client-cert-auth',
            '--trusted-ca-file',
            tls.ca,
            '--cert-file',
            tls.serverCert,
            '--key-file',
            tls.serverKey,
          ]
        : []),
    ];
    this.logFd = fs.openSync(this.logFile, 'a');
    // `ip netns exec` execs etcd in place: the pid is etcd's, and its command line names the data dir.
    const [file, argv] = this.cluster.netns ? [IP, ['netns', 'exec', this.cluster.netns, ETCD, ...args]] : [ETCD, args];
    const child = spawn(file, argv, { stdio: ['ignore', this.logFd, this.logFd] });
    this.child = child;
    fs.writeFileSync(path.join(this.cluster.dir, `${this.name}.pid`), String(child.pid ?? ''));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    fs.closeSync(this.logFd);
    this.logFd = undefined;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  killSync(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.kill();
    this.spawn();
    await this.cluster.waitServing([this]);
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}

interface TlsPaths {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

class Cluster implements EtcdCluster {
  readonly dir: string;
  readonly tls: boolean;
  readonly netns: string | undefined;
  readonly host: string;
  readonly members: Member[] = [];
  tlsPaths: TlsPaths | undefined;
  tlsFiles: TlsFiles | undefined;
  private stopped = false;

  constructor(private readonly opts: StartOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
    fs.writeFileSync(path.join(this.dir, 'owner.pid'), String(process.pid));
    this.tls = !!opts.tls;
    this.netns = opts.netns;
    this.host = opts.host ?? '127.0.0.1';
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  initialCluster(): string {
    return this.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  async start(): Promise<void> {
    if (this.tls) await this.makeCerts();
    const count = this.opts.members ?? 1;
    const ports = await freePorts(count * 2);
    for (let i = 0; i < count; i++) this.members.push(new Member(this, `m${i + 1}`, ports[2 * i], ports[2 * i + 1]));
    for (const m of this.members) m.spawn();
    await this.waitServing(this.members);
    if (this.opts.auth) await this.enableAuth(this.opts.auth);
  }

  /** Polls each member's /health until it reports healthy, or fails with its log. */
  async waitServing(members: Member[]): Promise<void> {
    const deadline = Date.now() + START_DEADLINE_MS;
    for (const m of members) {
      for (;;) {
        if (!m.running) {
          const log = m.log();
          if (/address already in use/.test(log)) throw new PortConflict(`${m.name}: port in use`);
          throw new Error(`etcd ${m.name} exited during start:\n${tail(log)}`);
        }
        if (await this.healthy(m)) break;
        if (Date.now() > deadline) {
          throw new Error(`etcd ${m.name} not healthy after ${START_DEADLINE_MS} ms:\n${tail(m.log())}`);
        }
        await sleep(50);
      }
    }
  }

  async leader(): Promise<Member> {
    const deadline = Date.now() + START_DEADLINE_MS;
    for (;;) {
      for (const m of this.members.filter((x) => x.running)) {
        const st = await this.call(m, '/v3/maintenance/status', {}).catch(() => undefined);
        if (st?.leader && st.leader === st.header?.member_id) return m;
      }
      if (Date.now() > deadline) throw new Error('etcd: no leader');
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.kill('SIGKILL')));
    this.removeDir();
  }

  stopSync(): void {
    for (const m of this.members) m.killSync();
    this.removeDir();
  }

  logs(): string {
    return this.members.map((m) => `--- ${m.name}\n${tail(m.log())}`).join('\n');
  }

  private removeDir(): void {
    if (this.stopped) return;
    this.stopped = true;
    liveClusters.delete(this);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async healthy(m: Member): Promise<boolean> {
    // A linearizable read: true only once the member has a leader and serves requests.
    const r = await this.call(m, '/v3/kv/range', { key: 'aGVhbHRo' }, 1000).catch(() => undefined);
    // With auth on, a call without a token is refused, but only by a member that serves.
    return !!r && (r.header !== undefined || /user name|auth token|permission denied/.test(String(r.message)));
  }

  private async enableAuth(auth: { user: string; password: string }): Promise<void> {
    const ctl = async (...args: string[]): Promise<void> => {
      const r = await this.ctlAs(undefined, args);
      if (r.code !== 0) throw new Error(`etcdctl ${args[0]} ${args[1]}: ${r.stderr.trim()}`);
    };
    await ctl('user', 'add', 'root', '--new-user-password', auth.password, '--interactive=false');
    if (auth.user !== 'root') {
      await ctl('user', 'add', auth.user, '--new-user-password', auth.password, '--interactive=false');
      await ctl('user', 'grant-role', auth.user, 'root');
    }
    await ctl('auth', 'enable');
    this.rootPassword = auth.password;
  }

  private rootPassword: string | undefined;

  ctl(...args: string[]): Promise<RunResult> {
    return this.ctlAs(this.rootPassword === undefined ? undefined : `root:${this.rootPassword}`, args);
  }

  private ctlAs(user: string | undefined, args: string[]): Promise<RunResult> {
    const tls = this.tlsPaths;
    const conn = ['--endpoints', this.endpoints.join(',')];
    if (tls) conn.push('--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey);
    if (user) conn.push('--user', user);
    const argv = [...conn, ...args];
    const env = { ...process.env, ETCDCTL_API: '3' };
    return this.netns ? run(IP, ['netns', 'exec', this.netns, ETCDCTL, ...argv], { env }) : run(ETCDCTL, argv, { env });
  }

  /** A raw gateway call to one member (independent of the client under test). */
  private call(m: Member, p: string, body: unknown, timeoutMs = 2000): Promise<any> {
    if (this.netns) return this.callInNetns(m, p, body, timeoutMs);
    const mod: typeof import('node:https') = this.tls ? require('node:https') : require('node:http');
    const f = this.tlsFiles;
    const tls = f ? { ca: fs.readFileSync(f.ca), cert: fs.readFileSync(f.cert), key: fs.readFileSync(f.key) } : {};
    const opts = { method: 'POST', agent: false as const, timeout: timeoutMs, ...tls };
    return new Promise((resolve, reject) => {
      const req = mod.request(`${m.clientUrl}${p}`, opts, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`not JSON: ${text.slice(0, 200)}`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  /** The same call made by a node process inside the namespace (the member is not reachable from here). */
  private async callInNetns(m: Member, p: string, body: unknown, timeoutMs: number): Promise<any> {
    const f = this.tlsFiles;
    const script = `
      const fs = require('node:fs');
      const f = ${JSON.stringify(f ?? null)};
      const mod = require(${JSON.stringify(this.tls ? 'node:https' : 'node:http')});
      const tls = f ? { ca: fs.readFileSync(f.ca), cert: fs.readFileSync(f.cert), key: fs.readFileSync(f.key) } : {};
      const req = mod.request(${JSON.stringify(m.clientUrl + p)}, { method: 'POST', agent: false, timeout: ${timeoutMs}, ...tls }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => process.stdout.write(text));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => { process.stderr.write(String(e)); process.exitCode = 1; });
      req.end(${JSON.stringify(JSON.stringify(body))});`;
    const r = await run(IP, ['netns', 'exec', this.netns!, process.execPath, '-e', script], {
      timeoutMs: timeoutMs + 3000,
    });
    if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
    try {
      return JSON.parse(r.stdout);
    } catch {
      throw new Error(`not JSON: ${r.stdout.slice(0, 200)}`);
    }
  }

  /** A CA, a server certificate for 127.0.0.1 and a client certificate, all EC P-256, valid one day. */
  private async makeCerts(): Promise<void> {
    const d = path.join(this.dir, 'pki');
    fs.mkdirSync(d);
    const f = (name: string): string => path.join(d, name);
    const ssl = async (...args: string[]): Promise<void> => {
      const r = await run(OPENSSL, args);
      if (r.code !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.trim()}`);
    };
    const key = (name: string): Promise<void> =>
      ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
    await key('ca.key');
    await ssl(
      'req',
      '-x509',
      '-new',
      '-key',
      f('ca.key'),
      '-subj',
      '/CN=tabby test CA',
      '-days',
      '1',
      '-out',
      f('ca.crt'),
    );
    // etcd's gateway dials the member's own gRPC port with the server certificate as client certificate.
    const sans = [...new Set(['127.0.0.1', this.host])].map((a) => `IP:${a}`).join(',');
    fs.writeFileSync(f('server.ext'), `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    fs.writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
    // The client certificate has no Common Name: with auth on, etcd's gateway refuses one that has.
    for (const [name, subject] of [
      ['server', '/CN=etcd-test-server'],
      ['client', '/O=tabby test client'],
    ]) {
      await key(`${name}.key`);
      await ssl('req', '-new', '-key', f(`${name}.key`), '-subj', subject, '-out', f(`${name}.csr`));
      await ssl(
        'x509',
        '-req',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f('ca.crt'),
        '-CAkey',
        f('ca.key'),
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        f(`${name}.ext`),
        '-out',
        f(`${name}.crt`),
      );
    }
    this.tlsPaths = {
      ca: f('ca.crt'),
      serverCert: f('server.crt'),
      serverKey: f('server.key'),
      clientCert: f('client.crt'),
      clientKey: f('client.key'),
    };
    this.tlsFiles = { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key') };
  }
}

/** `n` distinct ports that were free a moment ago (random high ports; a start that loses a race retries). */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    if (!ports.has(port) && (await portFree(port))) ports.add(port);
  }
  return [...ports];
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const tail = (text: string, lines = 30): string => text.trimEnd().split('\n').slice(-lines).join('\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
