/**
 * A tiny "SaaS key API" in the common shape (Stripe/SendGrid/Datadog-like) for the http issuer:
 *   POST   /v1/keys        admin bearer token, JSON {name}  -> 201 {"data":{"id","key","name"}}
 *   DELETE /v1/keys/:id    admin bearer token               -> 204, or 404 when unknown
 *   GET    /v1/whoami      bearer (or X-Api-Key) = an API key -> 200 {"keyId"} or 401
 * Binds 127.0.0.1 on a random port and records each request's method, path, headers and body.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SaasRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface FakeSaas {
  baseUrl: string;
  adminToken: string;
  /** Live keys by id. */
  keys: Map<string, { key: string; name: string }>;
  requests: SaasRequest[];
  /** The next N requests answer this status. */
  failNext(count: number, status: number): void;
  /** The next key issued is exactly this text (a hostile or broken API). */
  issueNext(key: string): void;
  close(): Promise<void>;
}

export async function startFakeSaas(): Promise<FakeSaas> {
  const adminToken = `adm_${randomBytes(12).toString('hex')}`;
  const keys = new Map<string, { key: string; name: string }>();
  const requests: SaasRequest[] = [];
  let failures = { count: 0, status: 500 };
  let nextKey: string | undefined;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push({ method: req.method ?? '', path, headers: req.headers, body });
      const send = (status: number, json?: unknown) => {
        res.writeHead(status, json === undefined ? {} : { 'content-type': 'application/json' });
        res.end(json === undefined ? undefined : JSON.stringify(json));
      };
      if (failures.count > 0) {
        failures.count -= 1;
        return send(failures.status, { error: 'injected' });
      }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (path === '/v1/whoami' && req.method === 'GET') {
        const presented = req.headers['x-api-key'] ?? bearer;
        const found = [...keys].find(([, k]) => k.key === presented);
        return found ? send(200, { keyId: found[0] }) : send(401, { error: 'invalid api key' });
      }
      if (bearer !== adminToken) return send(401, { error: 'admin token required' });
      if (path === '/v1/keys' && req.method === 'POST') {
        const { name } = JSON.parse(body || '{}') as { name?: string };
        const id = `key_${randomBytes(6).toString('hex')}`;
        const key = nextKey ?? `sk_live_${randomBytes(24).toString('base64url')}`;
        nextKey = undefined;
        keys.set(id, { key, name: name ?? '' });
        return send(201, { data: { id, key, name } });
      }
      const match = /^\/v1\/keys\/([\w-]+)$/.exec(path);
      if (match && req.method === 'DELETE') return keys.delete(match[1]!) ? send(204) : send(404, { error: 'no such key' });
      return send(404, { error: 'not found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    adminToken,
    keys,
    requests,
    failNext(count, status) {
      failures = { count, status };
    },
    issueNext(key) {
      nextKey = key;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The rekey.yaml block of an `acme` http provider for this fake (indented to sit under
 * `providers:`), its admin token read from `${env:<tokenEnv>}` (list it in `env.allow`);
 * `verify` adds the whoami probe of a new key.
 */
export function acmeProviderYaml(saas: FakeSaas, tokenEnv: string, { verify = true }: { verify?: boolean } = {}): string {
  return [
    '  acme:',
    '    type: http',
    `    baseUrl: ${saas.baseUrl}`,
    '    insecure: true',
    `    headers: { Authorization: "Bearer \${env:${tokenEnv}}" }`,
    '    issue: { url: /v1/keys, valuePath: $.data.key, idPath: $.data.id }',
    '    revoke: { url: "/v1/keys/{{id}}" }',
    ...(verify ? ['    verify: { url: /v1/whoami, headers: { Authorization: "Bearer {{value}}" } }'] : []),
  ].join('\n');
}
