// The http issuer against a local fake SaaS key API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import { providers } from '../../../src/registry.js';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, issued, newVersion } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import http from '../index.js';
import { parsePath, readPath } from '../template.js';
import { startFakeSaas, type FakeSaas } from './fake/saas-server.js';

const ENV = `PROVIDERTEST_SAAS_ADMIN_${process.pid}`;
let saas: FakeSaas;

beforeAll(async () => {
  saas = await startFakeSaas();
  process.env[ENV] = saas.adminToken;
});
afterAll(async () => {
  await saas.close();
  delete process.env[ENV];
});

const config = (overrides: Record<string, unknown> = {}) => ({
  baseUrl: saas.baseUrl,
  insecure: true, // the fake SaaS speaks plain http on loopback
  headers: { Authorization: `Bearer \${env:${ENV}}` },
  issue: {
    url: '/v1/keys',
    headers: { 'Idempotency-Key': '{{versionId}}' },
    body: { name: 'rekey-{{secret}}-{{number}}-{{vars.team}}' },
    valuePath: '$.data.key',
    idPath: 'data.id',
  },
  revoke: { url: '/v1/keys/{{id}}' },
  verify: { url: '/v1/whoami', headers: { Authorization: 'Bearer {{value}}' } },
  ...overrides,
});

function open(overrides: Record<string, unknown> = {}) {
  const instance = http.open(http.config.parse(config(overrides)), testProviderContext('acme'));
  return instance.issuer!({ secret: 'acme-api-key', params: http.bindings.issuer!.parse({ vars: { team: 'payments' } }) });
}

issuerConformance('http', () => Promise.resolve({ issuer: open(), secret: 'acme-api-key', unknownState: { id: 'key_unknown' } }), {
  revokeIsObservable: true,
});

describe('http issuer', () => {
  it('renders templates and credential references, and keeps only the id in the state', async () => {
    const { ref } = newVersion('acme-api-key');
    const before = saas.requests.length;
    const { value, state } = await open().issue(ref, call());
    const request = saas.requests[before]!;
    expect(request.headers['idempotency-key']).toBe(ref.versionId);
    expect(request.headers.authorization).toBe(`Bearer ${saas.adminToken}`);
    expect(JSON.parse(request.body)).toEqual({ name: `rekey-acme-api-key-${ref.number}-payments` });
    expect(value.reveal()).toMatch(/^sk_live_/);
    expect(state).toEqual({ id: expect.stringMatching(/^key_/) as unknown });
    expect(saas.keys.get(state.id as string)?.key).toBe(value.reveal());
  });

  it('maps statuses to rekey codes and never puts the response in the message', async () => {
    const issuer = open();
    for (const [status, code] of [
      [429, 'REKEY_ERR_THROTTLED'],
      [503, 'REKEY_ERR_UNAVAILABLE'],
      [403, 'REKEY_ERR_DENIED'],
      [422, 'REKEY_ERR_INVALID'],
    ] as const) {
      saas.failNext(1, status);
      const error = await issuer.issue(newVersion('s').ref, call()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code });
      expect(String((error as Error).message)).not.toContain('injected');
    }
    saas.failNext(1, 500);
    const { ref } = newVersion('s');
    expect(await issuer.revoke(issued(ref, { id: 'key_x' }), call()).catch((e: unknown) => e)).toMatchObject({
      code: 'REKEY_ERR_UNAVAILABLE',
      retryable: true,
    });
  });

  it('fails verify with VERIFY_FAILED for a rejected key, and passes without a verify call configured', async () => {
    const { ref } = newVersion('s');
    const issuer = open();
    const { value, state } = await issuer.issue(ref, call());
    saas.keys.delete(state.id as string);
    expect(await issuer.verify(issued(ref, state), value, call()).catch((e: unknown) => e)).toMatchObject({
      code: 'REKEY_ERR_VERIFY_FAILED',
    });
    await open({ verify: undefined }).verify(issued(ref, state), value, call());
  });

  it('verify sends the new key, not the admin token, unless the config asks for the provider headers', async () => {
    const { ref } = newVersion('s');
    const verify = { url: '/v1/whoami', headers: { 'X-Api-Key': '{{value}}' } };
    const { value, state } = await open({ verify }).issue(ref, call());
    await open({ verify }).verify(issued(ref, state), value, call());
    expect(saas.requests.at(-1)).toMatchObject({ path: '/v1/whoami', headers: { 'x-api-key': value.reveal() } });
    expect(saas.requests.at(-1)!.headers.authorization).toBeUndefined();
    await open({ verify: { ...verify, providerHeaders: true } }).verify(issued(ref, state), value, call());
    expect(saas.requests.at(-1)!.headers.authorization).toBe(`Bearer ${saas.adminToken}`);
  });

  it('a key with control characters fails verify in our own words: no part of it in the message', async () => {
    const { ref } = newVersion('s');
    const key = `sk_live_${'k'.repeat(20)}\r\nX-Injected: 1\u0000tail`;
    saas.issueNext(key);
    const { value, state } = await open().issue(ref, call());
    expect(value.reveal()).toBe(key);
    const error = (await open().verify(issued(ref, state), value, call()).catch((e: unknown) => e)) as Error & { code: string };
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.message).toContain('header Authorization of GET /v1/whoami');
    for (const part of ['kkkkkkkkkk', 'X-Injected', 'tail', 'Bearer']) expect(error.message).not.toContain(part);
  });

  it('refuses configs that would leak or cannot revoke', () => {
    const parse = (overrides: Record<string, unknown>) => http.config.safeParse(config(overrides)).success;
    expect(parse({})).toBe(true);
    expect(parse({ revoke: { url: '/v1/keys' } })).toBe(false); // no {{id}}
    expect(parse({ revoke: { url: '/v1/keys/{{value}}' } })).toBe(false);
    expect(parse({ issue: { ...config().issue, url: '/v1/keys?k={{value}}' } })).toBe(false);
    expect(parse({ issue: { ...config().issue, valuePath: '$..key' } })).toBe(false);
  });

  it('refuses plain http unless insecure, and link-local or metadata addresses always', async () => {
    const issues = (overrides: Record<string, unknown>) => http.config.safeParse(config(overrides)).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({ insecure: false })).toEqual(['baseUrl: must be https (http only with insecure: true)']);
    expect(issues({ baseUrl: 'https://169.254.169.254/latest' })).toEqual(['baseUrl: must not point at a link-local or cloud metadata address']);
    expect(issues({ baseUrl: 'http://2852039166/' })).toEqual(['baseUrl: must not point at a link-local or cloud metadata address']);
    expect(issues({ verify: { url: 'https://metadata.google.internal/computeMetadata/v1/' } })).toEqual(['verify.url: must not point at a link-local or cloud metadata address']);
    expect(issues({ baseUrl: 'https://[fd00:ec2::254]/' })).toEqual(['baseUrl: must not point at a link-local or cloud metadata address']);
    // A host built by a template is checked once rendered.
    const issuer = http.open(http.config.parse(config({ issue: { ...config().issue, url: '//{{vars.team}}/latest/meta-data/' } })), testProviderContext('acme'));
    const binding = { secret: 'acme-api-key', params: http.bindings.issuer!.parse({ vars: { team: '169.254.169.254' } }) };
    const error = await issuer.issuer!(binding).issue(newVersion('s').ref, call()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'REKEY_ERR_CONFIG' });
    expect((error as Error).message).toMatch(/must not point at a link-local or cloud metadata address/);
  });

  it('reads JSON paths', () => {
    const doc = { data: { items: [{ id: 7 }], key: 'k' } };
    expect(readPath(doc, parsePath('$.data.items[0].id')!)).toBe(7);
    expect(readPath(doc, parsePath('data.items.0.id')!)).toBe(7);
    expect(readPath([{ id: 'a' }], parsePath('$[0].id')!)).toBe('a');
    expect(readPath(doc, parsePath('$.nope.deeper')!)).toBeUndefined();
    expect(parsePath('$.a..b')).toBeUndefined();
    // Own members only: what every object inherits is not in the document.
    expect(readPath(doc, parsePath('$.constructor')!)).toBeUndefined();
    expect(readPath(doc, parsePath('$.data.toString')!)).toBeUndefined();
  });
});

describe('http in rekey.yaml', () => {
  it('refuses a binding lacking a {{vars.<key>}} the templates use: every issue (or revoke) would fail', async () => {
    const instance = http.open(http.config.parse(config()), testProviderContext('acme'));
    const unset = instance.issuer!({ secret: 'acme-api-key', params: http.bindings.issuer!.parse({}) });
    const error = await unset.issue(newVersion('acme-api-key').ref, call()).then(() => undefined, (e: unknown) => e as { code: string });
    expect(error?.code).toBe('REKEY_ERR_CONFIG');
    const problems = (vars: string) =>
      parseConfig(
        `env: { allow: [ACME_ADMIN] }
providers:
  vault: { type: local }
  acme:
    type: http
    baseUrl: https://api.acme.example
    headers: { Authorization: "Bearer \${env:ACME_ADMIN}", X-Team: "{{vars.team}}" }
    issue: { url: /v1/keys, body: { name: "rekey-{{secret}}" }, valuePath: $.key, idPath: $.id }
    revoke: { url: "/v1/orgs/{{vars.org}}/keys/{{id}}" }
secrets:
  a: { store: { provider: vault }, issuer: { provider: acme${vars} } }
`,
        'rekey.yaml',
        providers,
      ).then(
        () => '',
        (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      );
    expect(await problems('')).toMatch(/secrets\.a\.issuer: .*vars\.org.*vars\.team|secrets\.a\.issuer: .*vars\.team.*vars\.org/);
    expect(await problems(', vars: { team: payments }')).toMatch(/secrets\.a\.issuer: .*vars\.org/);
    expect(await problems(', vars: { team: payments, org: o1 }')).toBe('');
  });
});
