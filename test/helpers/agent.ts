// `tabby agent` processes on simulated nodes, for tests and the demo (no vitest here).
import { ChildProcess, spawn } from 'node:child_process';
import { IP, nsExec, RunResult } from './proc';
import type { SimCluster, SimNode } from './cluster';

export interface AgentProcess {
  node: SimNode;
  child: ChildProcess;
  /** Its /healthz and /metrics, inside the node's namespace. */
  port: number;
  /** What it has written to stderr so far. */
  log(): string;
  /** Resolves with the exit code (or 128 + signal number's name) once it exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `tabby agent` inside a node's namespace; health and metrics on 127.0.0.1:`port` there. */
export function startAgent(c: SimCluster, node: SimNode, port = 9099, extra: string[] = []): AgentProcess {
  const args = [
    'netns',
    'exec',
    node.ns,
    ...c.tabby,
    'agent',
    '--config',
    node.conflist,
    '--metrics-addr',
    `127.0.0.1:${port}`,
    ...extra,
  ];
  const child = spawn(IP, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { node, child, port, log: () => stderr, exited };
}

/** Waits until `cond` holds, polling; fails after `timeoutMs` naming `what` (never a fixed sleep). */
export async function waitFor<T>(
  what: string,
  cond: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET http://127.0.0.1:port/path inside the node's namespace (node's own fetch, run there). */
export async function httpGet(a: AgentProcess, path: string): Promise<{ status: number; body: string }> {
  const script =
    `fetch('http://127.0.0.1:${a.port}${path}').then(async (r) => ` +
    `process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), ` +
    `(e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e) })); })`;
  const r: RunResult = await nsExec(a.node.ns, process.execPath, ['-e', script]);
  return JSON.parse(r.stdout || '{"status":0,"body":""}');
}

/** One sample of a Prometheus metric (the first line that matches name and labels), or undefined. */
export function metricValue(text: string, name: string, labels = ''): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}${labels}`) && /\s[-+\d.eE]+$/.test(l) && !l.startsWith('#'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Stops an agent with `signal` and waits for it to exit. */
export async function stopAgent(a: AgentProcess, signal: NodeJS.Signals = 'SIGTERM') {
  if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill(signal);
  return a.exited;
}
