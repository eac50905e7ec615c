/**
 * A minimal client for Caddy's admin API (https://caddyserver.com/docs/api): JSON over
 * HTTP on a loopback port or a unix socket. Caddy 2.6 sends the config's ETag as an
 * HTTP trailer, which fetch() does not expose, hence node:http.
 */
import { request } from 'node:http';

export type AdminEndpoint = { kind: 'unix'; socketPath: string } | { kind: 'tcp'; host: string; port: number };

export function parseAdminEndpoint(text: string): AdminEndpoint {
  if (text.startsWith('unix:')) return { kind: 'unix', socketPath: text.slice('unix:'.length) };
  const url = new URL(text);
  return { kind: 'tcp', host: url.hostname, port: Number(url.port || 80) };
}

export interface AdminAnswer {
  status: number;
  body: string;
  /** The ETag of the object read (`"<path> <hash>"`), for If-Match on the next change. */
  etag: string | undefined;
}

/** Transport failure before Caddy answered; `code` is Node's errno. */
export class AdminTransportError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'AdminTransportError';
  }
}

export function adminRequest(
  endpoint: AdminEndpoint,
  o: { method: string; path: string; body?: unknown; ifMatch?: string; signal: AbortSignal; timeoutMs: number },
): Promise<AdminAnswer> {
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (o.ifMatch) headers['if-match'] = o.ifMatch;
    // Caddy 2.6 checks the Host header: loopback names on TCP; on a unix socket, the
    // names in admin.origins (README: add "localhost").
    const target = endpoint.kind === 'unix' ? { socketPath: endpoint.socketPath, host: 'localhost' } : { host: endpoint.host, port: endpoint.port };
    const req = request({ ...target, method: o.method, path: o.path, headers, agent: false, signal: o.signal, timeout: o.timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const etag = res.headers.etag ?? res.trailers.etag;
        resolve({ status: res.statusCode ?? 0, body, etag });
      });
      res.on('error', (error: NodeJS.ErrnoException) => reject(new AdminTransportError('admin API answer broken off', error.code)));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => {
      const code = o.signal.aborted ? 'ABORT_ERR' : error.code;
      reject(new AdminTransportError(`admin API ${code ?? 'error'}`, code));
    });
    req.end(payload);
  });
}
