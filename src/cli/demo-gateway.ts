/**
 * HAProxy 2.6 as an API gateway that verifies bearer JWTs itself with `jwt_verify`: alg pinned
 * to ES256, `aud` and `exp` checked with `jwt_payload_query`, the signature against PEM
 * public key files loaded with the configuration (2.6 takes a key file, not a JWKS). The demo runs it in front
 * of its orders API; the delivery tests in front of a fixed answer. docs/delivery.md shows the
 * same frontend.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { connect, createServer } from 'node:net';

/**
 * haproxy.cfg: 401 unless every check passes; then `backend` (host:port), or 200 "ok" without one.
 * The signature must verify with one of `keyFiles` (the haproxy target's `keyFiles` publish a
 * signing key's live public keys there; an empty file verifies nothing).
 */
export function haproxyJwtConfig(o: { port: number; keyFiles: string[]; audience: string; backend?: string }): string {
  const verified = o.keyFiles.map((file) => `{ var(txn.bearer),jwt_verify(ES256,"${file}") -m int 1 }`).join(' || ');
  return `defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s

frontend api
  bind 127.0.0.1:${o.port}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless { var(txn.alg) -m str ES256 }
  http-request deny deny_status 401 unless { var(txn.aud) -m str ${o.audience} }
  http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny deny_status 401 unless ${verified}
${o.backend ? `  default_backend app\n\nbackend app\n  server app ${o.backend}\n` : '  http-request return status 200 content-type text/plain string ok\n'}`;
}

/** The PEM (SPKI) of a public JWK, as `jwt_verify` reads it. */
export function pemOfJwk(jwk: object): string {
  return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
}

/** A free loopback port: bind port 0, read it, release it (the gateway binds it next). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts `haproxy -db -f config` and resolves once `port` accepts connections; undefined when there is no haproxy on PATH. */
export async function startHaproxy(config: string, port: number, timeoutMs = 10_000): Promise<ChildProcess | undefined> {
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: 'ignore' });
  const failed = await new Promise<boolean>((resolve) => {
    child.once('error', () => resolve(true));
    child.once('spawn', () => resolve(false));
  });
  if (failed) return undefined;
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy did not listen on ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return child;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
