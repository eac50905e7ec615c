/**
 * One admin API operation, declared once: its path, the scope it needs, and zod schemas for
 * what it takes and answers. The same declaration validates requests, strips responses to
 * their schema, and writes the operation into the OpenAPI document (src/api/openapi.ts).
 */
import { z } from 'zod';
import type { Runtime } from '../runtime.js';
import type { Access, ScopeName } from './scopes.js';
import type { Session } from './sessions.js';
import type { TokenInfo } from './tokens.js';

/** Where the admin API is served. */
export const API_PREFIX = '/api/v1';

/** The authenticated caller of a request. */
export interface Caller {
  /** The token, or the person of an OpenID Connect session (a stable id derived from their subject). */
  principal: Pick<TokenInfo, 'id' | 'name' | 'scopes'>;
  access: Access;
  /** How the caller is named in the audit log: `token:<name>` or `oidc:<issuer>#<subject>` (src/api/actors.ts). */
  actor: string;
  /** The dashboard session that authenticated the request, when it was not a bearer token. */
  session?: Session;
}

export interface Handled<Q, P, B> {
  runtime: Runtime;
  caller: Caller;
  query: Q;
  params: P;
  body: B;
  /** The request's `Idempotency-Key`, for actions. */
  idempotencyKey: string | undefined;
}

/**
 * Which secrets the scope is checked against:
 * - `secret`: the one named by the path (`params.name`), against the scope's glob;
 * - `some`: the caller holds the scope for at least one secret; the handler filters what it shows;
 * - `all`: the scope without a glob (everything, and what belongs to no secret).
 */
export type Reach = 'secret' | 'some' | 'all';

export interface ApiRoute<Q extends z.ZodType = z.ZodType, P extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST';
  /** fastify's syntax, under /api/v1: `/secrets/:name`. */
  path: string;
  operationId: string;
  summary: string;
  /** Undefined: any authenticated caller. */
  scope?: ScopeName;
  reach: Reach;
  query?: Q;
  params?: P;
  body?: B;
  response: R;
  /** @defaultValue 200 */
  status?: number;
  /** A state-changing action: audited, and answered again from its `Idempotency-Key`. */
  action?: boolean;
  handler: (input: Handled<z.infer<Q>, z.infer<P>, z.infer<B>>) => Promise<z.input<R>>;
}

/** Declares a route with its types inferred from its schemas. */
export function route<Q extends z.ZodType = z.ZodObject, P extends z.ZodType = z.ZodObject, B extends z.ZodType = z.ZodObject, R extends z.ZodType = z.ZodType>(
  definition: ApiRoute<Q, P, B, R>,
): ApiRoute {
  return definition;
}

/** A positive id or number as PostgreSQL's `integer` holds it (version numbers, revision ids): a bigger one is a 400, not a database error. */
export const positiveInt = () => z.coerce.number().int().min(1).max(2_147_483_647);

/** `:name` path parameters (a name with `/`, a per-client key, is sent as `%2F`). */
export const secretParams = z.object({ name: z.string().min(1).max(200) });

/** A page of a list: `limit` items after the cursor `after`; `next` is the cursor of the next page, null at the end. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  after: z.string().max(200).optional(),
};

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next: z.string().nullable() });
}

/** ISO 8601 instants, or null. */
export const instant = z.iso.datetime().nullable();

export function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null;
}
