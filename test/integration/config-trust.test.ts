/**
 * Configuration cannot be turned against rekey (issue 12, item 6). A config that would hand
 * rekey's own credentials to a provider, read a variable nobody allowed, aim a gateway at a file
 * outside its path, smuggle a Runtime API command in a map name, send values over plain http or
 * to a metadata service, or name a secret after a property every object has, is refused by
 * `rekey apply` and `rekey apply --dry-run` alike, naming the field (and the variable), and
 * nothing is applied.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let env: NodeJS.ProcessEnv;
const dir = mkdtempSync(join(tmpdir(), 'rekey-config-trust-'));

beforeAll(async () => {
  h = await startHarness({ label: 'config-trust', workers: false });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix, ACME_ADMIN_TOKEN: 'acme-token' };
});
afterAll(() => h.stop());

const secret = (extra = '') => `
secrets:
  payments:
    store: { provider: vault }
    issuer: { type: random }
${extra}`;
const vault = '  vault: { type: local }\n';
const ALLOW = 'env: { allow: ["ACME_*"] }\n';
const http = (fields: string) => `  acme:
    type: http
${fields}
    issue: { url: /v1/keys, valuePath: $.key, idPath: $.id }
    revoke: { url: "/v1/keys/{{id}}" }
`;

const hostile: Array<[string, string, RegExp]> = [
  [
    'the local store key in an http issuer header',
    `providers:\n${vault}${http('    baseUrl: https://api.acme.example\n    headers: { X-Key: "k=${env:REKEY_LOCAL_STORE_KEY}" }')}${secret()}${ALLOW}`,
    /providers\.acme\.headers\.X-Key: \$\{env:REKEY_LOCAL_STORE_KEY\} is rekey's own setting or credential: a config may never read it/,
  ],
  ['the local store key named outright', `providers:\n  vault: { type: local, key: "\${env:REKEY_LOCAL_STORE_KEY}" }\n${secret()}`, /providers\.vault\.key: \$\{env:REKEY_LOCAL_STORE_KEY\} is rekey's own/],
  [
    'DATABASE_URL as a webhook signing secret',
    `providers:\n${vault}  hooks: { type: webhook, url: "https://hooks.example.com/rekey", secret: "\${env:DATABASE_URL}" }\n${secret('    targets: [hooks]')}`,
    /providers\.hooks\.secret: \$\{env:DATABASE_URL\} is rekey's own/,
  ],
  [
    'REKEY_FINGERPRINT_KEY as a leak receiver token',
    `providers:\n${vault}${secret()}leaks:\n  gitguardian: { token: "\${env:REKEY_FINGERPRINT_KEY}" }\n`,
    /leaks\.gitguardian\.token: \$\{env:REKEY_FINGERPRINT_KEY\} is rekey's own/,
  ],
  ['REDIS_URL as a keyset target', `providers:\n${vault}  api: { type: redis-keyset, url: "\${env:REDIS_URL}" }\n${secret('    targets: [api]')}`, /providers\.api\.url: \$\{env:REDIS_URL\} is rekey's own/],
  [
    "rekey's cloud credentials as a Kong admin token",
    `providers:\n${vault}  kong: { type: kong, adminUrl: "https://kong.example.com:8444", adminToken: "\${env:AWS_SECRET_ACCESS_KEY}" }\n${secret()}${ALLOW}`,
    /providers\.kong\.adminToken: \$\{env:AWS_SECRET_ACCESS_KEY\} is rekey's own/,
  ],
  [
    'PGPASSWORD (the pg driver gives it to rekey\'s own connection when DATABASE_URL has no password), even listed in env.allow',
    `providers:\n${vault}${http('    baseUrl: https://api.acme.example\n    headers: { X-Key: "${env:PGPASSWORD}" }')}${secret()}env: { allow: ["PG*"] }\n`,
    /providers\.acme\.headers\.X-Key: \$\{env:PGPASSWORD\} is rekey's own setting or credential/,
  ],
  [
    'a variable env.allow does not list',
    `providers:\n${vault}${http('    baseUrl: https://api.acme.example\n    headers: { Authorization: "Bearer ${env:OTHER_TOKEN}" }')}${secret()}${ALLOW}`,
    /providers\.acme\.headers\.Authorization: \$\{env:OTHER_TOKEN\} is not allowed: list OTHER_TOKEN under env\.allow/,
  ],
  ['a relative HAProxy map path', `providers:\n${vault}  edge: { type: haproxy, runtimeApi: "unix:/run/haproxy.sock", map: etc/haproxy/keys.map }\n${secret()}`, /providers\.edge\.map: must be an absolute, normalized path/],
  [
    'an HAProxy map path climbing out',
    `providers:\n${vault}  edge: { type: haproxy, runtimeApi: "unix:/run/haproxy.sock", map: /etc/haproxy/../shadow }\n${secret()}`,
    /providers\.edge\.map: must be an absolute, normalized path/,
  ],
  [
    'a Runtime API command in a map name',
    `providers:\n${vault}  edge: { type: haproxy, runtimeApi: "unix:/run/haproxy.sock", map: "/etc/haproxy/keys.map;shutdown" }\n${secret()}`,
    /providers\.edge\.map: a map name holds only letters, digits/,
  ],
  [
    'a per-secret map override climbing out',
    `providers:\n${vault}  edge: { type: haproxy, runtimeApi: "unix:/run/haproxy.sock", map: /etc/haproxy/keys.map }\n${secret('    targets: [{ provider: edge, map: "/etc/haproxy/./../haproxy/keys.map" }]')}`,
    /secrets\.payments\.targets\[0\]\.map: must be an absolute, normalized path/,
  ],
  ['an nginx map outside its path', `providers:\n${vault}  web: { type: nginx, map: "/etc/nginx/maps/../../passwd" }\n${secret()}`, /providers\.web\.map: must be an absolute, normalized path/],
  [
    'a webhook over plain http',
    `providers:\n${vault}  hooks: { type: webhook, url: "http://hooks.example.com/rekey", secret: "\${env:ACME_HOOK_SECRET}" }\n${secret()}${ALLOW}`,
    /providers\.hooks\.url: must be https \(http only with insecure: true\)/,
  ],
  [
    'an http issuer aimed at the instance metadata service, insecure or not',
    `providers:\n${vault}${http('    baseUrl: http://169.254.169.254/latest/\n    insecure: true')}${secret()}`,
    /providers\.acme\.baseUrl: must not point at a link-local or cloud metadata address/,
  ],
  [
    "a webhook at Google's metadata server",
    `providers:\n${vault}  hooks: { type: webhook, url: "https://metadata.google.internal/computeMetadata/v1/", secret: "\${env:ACME_HOOK_SECRET}" }\n${secret()}${ALLOW}`,
    /providers\.hooks\.url: must not point at a link-local or cloud metadata address/,
  ],
  ['a secret named __proto__', `providers:\n${vault}secrets:\n  __proto__:\n    store: { provider: vault }\n    issuer: { type: random }\n`, /secrets\.__proto__: "__proto__" cannot name a secret/],
  ['a secret named constructor', `providers:\n${vault}secrets:\n  constructor:\n    store: { provider: vault }\n    issuer: { type: random }\n`, /secrets\.constructor: "constructor" cannot name a secret/],
  ['a provider named toString', `providers:\n  toString: { type: local }\n${secret()}`, /providers\.toString: "toString" cannot name a provider/],
  ['a client named constructor', `providers:\n${vault}${secret('    clients: [web, constructor]')}`, /secrets\.payments\.clients\[1\]: "constructor" cannot name a client/],
  ['a reference to an inherited provider', `providers:\n${vault}secrets:\n  payments:\n    store: { provider: constructor }\n    issuer: { type: random }\n`, /secrets\.payments\.store\.provider: no provider named "constructor"/],
];

describe('configs turned against rekey', () => {
  it.each(hostile)('%s: refused by apply and apply --dry-run, nothing applied', async (name, text, message) => {
    const path = join(dir, `${name.replaceAll(/\W+/g, '-')}.yaml`);
    writeFileSync(path, text);
    const before = { revisions: await h.runtime.db.configRevision.count(), secrets: await h.runtime.db.secret.count() };
    for (const args of [['apply', '-f', path, '--dry-run'], ['apply', '-f', path]]) {
      const result = await rekey(args, env);
      expect({ args, code: result.code }).toEqual({ args, code: 1 });
      expect(result.stderr).toContain(`invalid configuration in ${path}`);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).not.toMatch(/Plan for|Applied/);
    }
    expect({ revisions: await h.runtime.db.configRevision.count(), secrets: await h.runtime.db.secret.count() }).toEqual(before);
  });

  it('applies what the operator allowed', async () => {
    const path = join(dir, 'allowed.yaml');
    writeFileSync(path, `providers:\n${vault}${http('    baseUrl: https://api.acme.example\n    headers: { Authorization: "Bearer ${env:ACME_ADMIN_TOKEN}" }')}${secret()}${ALLOW}`);
    const result = await rekey(['apply', '-f', path], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await h.runtime.db.secret.findMany()).map((s) => s.name)).toEqual(['payments']);
  });
});
