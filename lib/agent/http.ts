// The agent's HTTP endpoint: /healthz for the kubelet's probes, /metrics for Prometheus.
import * as http from 'node:http';
import type { AgentMetrics } from './metrics';

export interface Health {
  /** undefined when healthy, else why not. */
  problem(): string | undefined;
}

/** Parses `host:port` (`[v6]:port` too). */
export function parseListenAddr(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  return port <= 65535 ? { host: m[1] ?? m[2], port } : undefined;
}

export function serveHttp(
  addr: { host: string; port: number },
  health: Health,
  metrics: AgentMetrics,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/healthz') {
      const problem = health.problem();
      res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(problem ? `unhealthy: ${problem}\n` : 'ok\n');
      return;
    }
    if (url === '/metrics') {
      metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (e) => res.writeHead(500).end(`${(e as Error).message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('try /healthz or /metrics\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}
