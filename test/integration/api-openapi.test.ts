/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- answers are JSON, checked field by field */
/**
 * The OpenAPI document (issue 16): generated from the routes' schemas, every route the server
 * registers under /api/v1 is in it and every operation in it is served, and each token sees
 * only the operations its scopes allow.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
const registered: string[] = [];

beforeAll(async () => {
  // Registered first, so it sees every route the API's scope adds after it.
  const collect = (app: FastifyInstance) => {
    app.addHook('onRoute', (r) => {
      if (r.url.startsWith('/api/v1') && r.method !== 'HEAD') registered.push(`${String(r.method)} ${r.url}`);
    });
  };
  h = await startHarness({ label: 'api-openapi', routes: [collect, adminApiRoutes] });
});
afterAll(() => h?.stop());

type Doc = { openapi: string; paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown>; 'x-rekey-scope'?: string }>> };
const operations = (doc: Doc) => Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`)).sort();

it('lists exactly the routes the server registers under /api/v1, and every one of them is served', async () => {
  const admin = await tokenFor(h, 'admin', ['admin']);
  const answer = await call(h, '/api/v1/openapi.json', { token: admin });
  expect(answer.status).toBe(200);
  const doc = answer.json as Doc;
  expect(doc.openapi).toBe('3.1.0');
  const fastifyStyle = operations(doc).map((op) => op.replace(/\{(\w+)\}/g, ':$1'));
  expect(fastifyStyle).toEqual([...new Set(registered)].sort());
  expect(fastifyStyle.length).toBeGreaterThanOrEqual(15);

  const samples: Record<string, string> = { name: 'no-such-secret', id: randomUUID(), number: '1' };
  const unrouted = (await call(h, '/api/v1/no/such/operation', { token: admin })).json;
  expect(unrouted).toMatchObject({ code: 'REKEY_API_NOT_FOUND', detail: 'no operation at this path' });
  for (const op of operations(doc)) {
    const [method, path] = op.split(' ') as [string, string];
    const concrete = path.replace(/\{(\w+)\}/g, (_m, p: string) => (path.includes('revisions') && p === 'id' ? '1' : samples[p]!));
    const served = await call(h, concrete, { token: admin, method });
    expect([op, served.json?.detail]).not.toEqual([op, 'no operation at this path']);
    expect([op, served.status]).not.toEqual([op, 405]);
  }
  // Each operation names its scope, success answer and problem answer from the same schemas that validate it.
  const list = doc.paths['/api/v1/secrets']!.get!;
  expect(list['x-rekey-scope']).toBe('read');
  expect(Object.keys(list.responses)).toEqual(['200', 'default']);
  expect(JSON.stringify(doc.paths['/api/v1/secrets/{name}/rotate'])).toContain('Idempotency-Key');
});

it("is filtered to what the caller's token may do", async () => {
  const docFor = async (scopes: string[]) => operations((await call(h, '/api/v1/openapi.json', { token: await tokenFor(h, `t-${randomUUID().slice(0, 8)}`, scopes) })).json as Doc);
  const read = await docFor(['read']);
  // Reads, and the one read that takes a body (keys found by a scanner are not put in a URL).
  expect(read.filter((op) => !op.startsWith('GET '))).toEqual(['POST /api/v1/keys/check']);
  expect(read).toContain('GET /api/v1/secrets/{name}');
  expect(await docFor(['rotate:pay-*'])).toEqual(['GET /api/v1/openapi.json', 'POST /api/v1/secrets/{name}/drift-check', 'POST /api/v1/secrets/{name}/rotate']);
  expect(await docFor(['revoke'])).toEqual(['GET /api/v1/openapi.json', 'POST /api/v1/keys/report', 'POST /api/v1/secrets/{name}/decommission', 'POST /api/v1/secrets/{name}/versions/{number}/revoke']);
  expect((await docFor(['admin'])).length).toBe(operations((await call(h, '/api/v1/openapi.json', { token: await tokenFor(h, 'admin-2', ['admin']) })).json as Doc).length);
  expect(await docFor(['admin'])).toContain('POST /api/v1/audit/verify');
});
