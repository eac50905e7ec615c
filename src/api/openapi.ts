/**
 * The OpenAPI 3.1 document of the admin API, generated from the routes' own zod schemas (the
 * ones that validate them), and filtered to the operations the caller's token may use.
 */
import { z } from 'zod';
import { PROBLEMS, problemSchema } from './problems.js';
import { API_PREFIX, type ApiRoute, route } from './route.js';
import type { Access } from './scopes.js';

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** `/secrets/:name` → `/secrets/{name}`. */
export function openapiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): JsonSchema[] {
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodType>).map(([name, field]) => ({
    name,
    in: where,
    required: where === 'path' || !field.safeParse(undefined).success,
    schema: jsonSchema(field, 'input'),
  }));
}

function operation(definition: ApiRoute): JsonSchema {
  const status = String(definition.status ?? 200);
  const problem = { description: 'a problem (RFC 9457)', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
  return {
    operationId: definition.operationId,
    summary: definition.summary,
    ...(definition.scope ? { 'x-rekey-scope': definition.scope } : {}),
    parameters: [
      ...parameters(definition.params, 'path'),
      ...parameters(definition.query, 'query'),
      ...(definition.action ? [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 200 } }] : []),
    ],
    ...(definition.body ? { requestBody: { required: false, content: { 'application/json': { schema: jsonSchema(definition.body, 'input') } } } } : {}),
    responses: { [status]: { description: 'ok', content: { 'application/json': { schema: jsonSchema(definition.response, 'output') } } }, default: problem },
  };
}

/** The document for a caller: every operation its scopes allow on at least one secret. */
export function openapiDocument(routes: readonly ApiRoute[], access: Access, prefix: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const definition of routes) {
    if (definition.scope && !access.holds(definition.scope)) continue;
    (paths[prefix + openapiPath(definition.path)] ??= {})[definition.method.toLowerCase()] = operation(definition);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'rekey admin API', version: '1', description: `Problem codes: ${Object.keys(PROBLEMS).join(', ')}` },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token from `rekey token create` (rkadm_...)' } },
      schemas: { Problem: jsonSchema(problemSchema, 'output') },
    },
  };
}

/** GET /openapi.json: needs a valid token and nothing more; `routes` is read when asked (it includes this route). */
export function openapiRoute(routes: () => readonly ApiRoute[]): ApiRoute {
  return route({
    method: 'GET',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: "This document, filtered to what the caller's token may do",
    reach: 'some',
    response: z.record(z.string(), z.unknown()),
    handler: ({ caller }) => Promise.resolve(openapiDocument(routes(), caller.access, API_PREFIX)),
  });
}
