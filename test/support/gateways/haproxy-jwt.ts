// HAProxy 2.6 from Debian as an API gateway that verifies bearer JWTs itself (jwt_verify):
// alg pinned to ES256, aud and exp checked with jwt_payload_query, the signature against a
// PEM public key file HAProxy loads at start (2.6 takes a key file, not a JWKS).
// 200 "ok" when every check passes, 401 otherwise.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, launchOnFreePorts, start, tempDir, waitForPort, type Supervised } from './process.js';

export interface JwtGateway extends Supervised {
  url: string;
  /** The PEM file jwt_verify reads (at start: restart() after changing it). */
  keyFile: string;
}

export async function startJwtHaproxy(publicKeyPem: string, audience: string): Promise<JwtGateway> {
  const dir = await tempDir('haproxy-jwt');
  const keyFile = join(dir.path, 'signing.pem');
  const config = join(dir.path, 'haproxy.cfg');
  await writeFile(keyFile, publicKeyPem);
  let port = 0;
  const supervised = await launchOnFreePorts(
    dir,
    async () => {
      port = await freePort();
      await writeFile(config, render(port, keyFile, audience));
    },
    () => start('haproxy', ['-db', '-f', config]),
    (proc) => waitForPort(port, proc),
  );
  return { ...supervised, url: `http://127.0.0.1:${port}/`, keyFile };
}

function render(port: number, keyFile: string, audience: string): string {
  return `defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s

frontend api
  bind 127.0.0.1:${port}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless { var(txn.alg) -m str ES256 }
  http-request deny deny_status 401 unless { var(txn.aud) -m str ${audience} }
  http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(ES256,"${keyFile}") -m int 1 }
  http-request return status 200 content-type text/plain string ok
`;
}
