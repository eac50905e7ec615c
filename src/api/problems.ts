/**
 * Every error the admin API answers, created here with a stable code (fastify's pattern), as
 * `application/problem+json` (RFC 9457). A problem's text comes from this table or from a
 * RekeyError, whose messages name secrets, versions and runs only: never a value, never a
 * header or a token a caller sent. docs/admin-api.md lists every code (a test checks it).
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';

export const PROBLEMS = {
  REKEY_API_UNAUTHENTICATED: { status: 401, title: 'a bearer token is required' },
  REKEY_API_TOKEN_INVALID: { status: 401, title: 'the token is unknown, revoked or expired' },
  REKEY_API_SESSION_INVALID: { status: 401, title: 'the dashboard session is unknown or over, or its token was revoked, or its person has no scope left' },
  REKEY_API_CSRF: { status: 403, title: 'a state-changing request of a dashboard session needs its X-CSRF-Token' },
  REKEY_API_FORBIDDEN: { status: 403, title: "the token's scopes do not allow this" },
  REKEY_API_NOT_FOUND: { status: 404, title: 'no such resource' },
  REKEY_API_INVALID_REQUEST: { status: 400, title: 'the request does not match the operation' },
  REKEY_API_CONFLICT: { status: 409, title: 'not possible in the current state' },
  REKEY_API_IDEMPOTENCY_IN_PROGRESS: { status: 409, title: 'a request with this Idempotency-Key is still being processed' },
  REKEY_API_IDEMPOTENCY_MISMATCH: { status: 422, title: 'this Idempotency-Key was used for another request' },
  REKEY_API_TOO_MANY_FAILURES: { status: 429, title: 'too many failed authentications from this source' },
  REKEY_API_SOURCE_BUSY: { status: 429, title: 'too many requests from this source are awaiting authentication' },
  REKEY_API_TOO_MANY_SIGN_INS: { status: 429, title: 'too many sign-ins started from this source' },
  REKEY_API_BUSY: { status: 503, title: 'too many requests awaiting authentication' },
  REKEY_API_UNAVAILABLE: { status: 503, title: 'PostgreSQL or Redis is unavailable' },
  REKEY_API_INTERNAL: { status: 500, title: 'internal error' },
} as const;

export type ProblemCode = keyof typeof PROBLEMS;

export const problemSchema = z
  .object({
    type: z.string().describe('urn:rekey:problem:<code>'),
    title: z.string(),
    status: z.number().int(),
    code: z.enum(Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]]),
    detail: z.string().optional(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('REKEY_API_INVALID_REQUEST: which fields, and why'),
  })
  .meta({ id: 'Problem' });

export type Problem = z.infer<typeof problemSchema>;

/** Thrown by handlers; answered by the API's error handler. */
export class ApiProblem extends Error {
  constructor(
    readonly code: ProblemCode,
    readonly detail?: string,
    readonly issues?: Problem['issues'],
  ) {
    super(code);
  }
}

export function problemOf(code: ProblemCode, detail?: string, issues?: Problem['issues']): Problem {
  const { status, title } = PROBLEMS[code];
  return { type: `urn:rekey:problem:${code}`, title, status, code, ...(detail ? { detail } : {}), ...(issues ? { issues } : {}) };
}

export function sendProblem(reply: FastifyReply, code: ProblemCode, detail?: string, issues?: Problem['issues']): FastifyReply {
  const problem = problemOf(code, detail, issues);
  return reply.code(problem.status).header('content-type', 'application/problem+json; charset=utf-8').send(JSON.stringify(problem));
}
