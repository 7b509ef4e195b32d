// HTTP(S) to one etcd endpoint over node:http/node:https: a JSON POST and its answer, or a stream of
// newline-delimited JSON messages (watch). Not fetch: Node 20's fetch cannot present a TLS client
// certificate without undici. Keep-alive agents save a TCP (and TLS) handshake per call; their idle
// sockets are unref'd by Node, so they do not keep a short process alive. The http modules are loaded
// on first use, so constructing a client costs nothing.
import type * as http from 'node:http';
import type { Endpoint, TlsMaterial } from './config';

export interface Reply {
  status: number;
  /** The parsed JSON body; undefined when the body is not JSON. */
  json: any;
  /** The start of a body that is not JSON, to recognise; never shown. */
  text?: string;
}

/**
 * A request that got no answer: the endpoint is down, slow, or the connection broke. `sent` says
 * whether etcd may have received (and applied) it. Never shown to a caller as is.
 */
export class TransportFailure {
  constructor(
    readonly kind: 'connect' | 'timeout' | 'reset' | 'tls',
    readonly reason: string,
    readonly sent: boolean,
  ) {}
}

/** How a stream ended: broken (failure), refused (a non-200 reply), or closed by etcd (neither). */
export interface StreamEnd {
  failure?: TransportFailure;
  reply?: Reply;
}

export interface StreamHandlers {
  /** One parsed message of the stream. */
  message(msg: any): void;
  end(how: StreamEnd): void;
}

// Connection errors where the request cannot have reached etcd.
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

// Certificate verification failures (codes of X509_verify_cert_error_string); their messages name no path.
const VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'INVALID_CA',
  'INVALID_PURPOSE',
]);

interface NodeError extends Error {
  code?: string;
  reason?: string;
}

export function classify(err: NodeError): TransportFailure {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new TransportFailure('tls', "the server certificate does not name the endpoint's address", false);
  }
  if (VERIFY_CODES.has(code)) return new TransportFailure('tls', `server certificate: ${err.message}`, false);
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    // OpenSSL's reason ("tlsv13 alert certificate required"), not its message (which may hold more);
    // without one, the code minus its ERR_SSL_/ERR_TLS_ prefix
    const reason = err.reason ?? code.slice(8).toLowerCase().replace(/_/g, ' ');
    return new TransportFailure('tls', reason, false);
  }
  if (NOT_SENT.has(code)) return new TransportFailure('connect', code, false);
  return new TransportFailure('reset', code || 'connection failed', true);
}

function reply(status: number, text: string): Reply {
  const json = parse(text);
  return json === undefined ? { status, json, text: text.slice(0, 200) } : { status, json };
}

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    // a stream endpoint (lease keepalive) answers one message and a newline
    try {
      return JSON.parse(text.split('\n')[0]);
    } catch {
      return undefined;
    }
  }
}

export class Transport {
  private agents: { http?: http.Agent; https?: http.Agent } = {};

  constructor(private readonly tls: TlsMaterial) {}

  /** POSTs `body` as JSON; resolves with any HTTP answer, rejects with a TransportFailure. */
  post(ep: Endpoint, path: string, body: unknown, headers: Record<string, string>, timeoutMs: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = this.request(ep, path, body, headers);
      const timer = setTimeout(() => {
        req.destroy();
        reject(new TransportFailure('timeout', `no answer within ${timeoutMs} ms`, true));
      }, timeoutMs);
      req.on('error', (e: NodeError) => {
        clearTimeout(timer);
        reject(classify(e));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e: NodeError) => {
          clearTimeout(timer);
          reject(classify(e));
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve(reply(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        });
      });
    });
  }

  /** Opens a stream of newline-delimited JSON messages; the function returned closes it. */
  stream(ep: Endpoint, path: string, body: unknown, headers: Record<string, string>, on: StreamHandlers): () => void {
    let over = false;
    const finish = (how: StreamEnd): void => {
      if (over) return;
      over = true;
      req.destroy();
      on.end(how);
    };
    const req = this.request(ep, path, body, headers);
    req.on('socket', (s) => s.setKeepAlive(true, 10_000)); // notice a peer that vanished without a FIN
    req.on('error', (e: NodeError) => finish({ failure: classify(e) }));
    req.on('response', (res) => {
      let pending = '';
      res.setEncoding('utf8');
      res.on('error', (e: NodeError) => finish({ failure: classify(e) }));
      if (res.statusCode !== 200) {
        res.on('data', (c: string) => (pending += c));
        res.on('end', () => finish({ reply: reply(res.statusCode ?? 0, pending) }));
        return;
      }
      res.on('data', (c: string) => {
        pending += c;
        let nl: number;
        while (!over && (nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line) on.message(parse(line));
        }
      });
      res.on('end', () => finish({}));
      res.on('close', () => finish({ failure: new TransportFailure('reset', 'stream closed', true) }));
    });
    return () => {
      over = true;
      req.destroy();
    };
  }

  close(): void {
    this.agents.http?.destroy();
    this.agents.https?.destroy();
    this.agents = {};
  }

  private request(ep: Endpoint, path: string, body: unknown, headers: Record<string, string>): http.ClientRequest {
    const payload = JSON.stringify(body);
    const mod = ep.tls
      ? (require('node:https') as typeof import('node:https'))
      : (require('node:http') as typeof import('node:http'));
    const req = mod.request({
      host: ep.url.hostname.replace(/^\[|\]$/g, ''),
      port: ep.url.port || (ep.tls ? 443 : 80),
      path: ep.url.pathname.replace(/\/$/, '') + path,
      method: 'POST',
      agent: this.agent(ep.tls),
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
    });
    req.end(payload);
    return req;
  }

  private agent(tls: boolean): http.Agent {
    if (tls) {
      const https = require('node:https') as typeof import('node:https');
      return (this.agents.https ??= new https.Agent({ keepAlive: true, ...this.tls }));
    }
    const http = require('node:http') as typeof import('node:http');
    return (this.agents.http ??= new http.Agent({ keepAlive: true }));
  }
}
