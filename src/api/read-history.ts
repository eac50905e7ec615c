/**
 * What happened: runs (with their steps from the audit log), leak reports (with leak-to-blocked
 * time), audit events, config revisions and the diff between two. Newest first, paged by cursor.
 */
import { z } from 'zod';
import { diffDocuments } from '../config/plan.js';
import type { JsonValue } from '../core/ports.js';
import type { Runtime } from '../runtime.js';
import { actorWhere } from './actors.js';
import { ApiProblem } from './problems.js';
import { type Caller, instant, iso, pageOf, pageQuery, positiveInt, route } from './route.js';
import { SHORT_FINGERPRINT, shortFingerprint } from './read-secrets.js';

/** The names of the secrets the caller may read; undefined when it may read everything. */
async function readable(runtime: Runtime, caller: Caller): Promise<string[] | undefined> {
  if (caller.access.allows('read')) return undefined;
  const rows = await runtime.db.secret.findMany({ select: { name: true } });
  return rows.map((r) => r.name).filter((name) => caller.access.allows('read', name));
}

/** Audit data carries fingerprints in full; answers carry their short form. */
function shortenData(data: JsonValue): JsonValue {
  if (data && typeof data === 'object' && !Array.isArray(data) && typeof data.fingerprint === 'string') return { ...data, fingerprint: data.fingerprint.slice(0, SHORT_FINGERPRINT) };
  return data;
}

export const auditEvent = z.object({
  seq: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  secret: z.string().nullable(),
  versionId: z.string().nullable(),
  runId: z.string().nullable(),
  data: z.unknown(),
});

type AuditRow = { seq: bigint; at: Date; actor: string; action: string; secret: string | null; versionId: string | null; runId: string | null; data: unknown };
const auditOut = (e: AuditRow) => ({ seq: e.seq.toString(), at: e.at.toISOString(), actor: e.actor, action: e.action, secret: e.secret, versionId: e.versionId, runId: e.runId, data: shortenData(e.data as JsonValue) });

export const run = z.object({
  id: z.string(),
  secret: z.string(),
  kind: z.string(),
  trigger: z.string(),
  status: z.string(),
  step: z.string(),
  attempts: z.number().int(),
  error: z.string().nullable(),
  emergency: z.boolean(),
  startedAt: z.string(),
  finishedAt: instant,
});

type RunRow = { id: string; kind: string; trigger: string; status: string; step: string; attempts: number; error: string | null; graceMs: number | null; startedAt: Date; finishedAt: Date | null; secret: { name: string } };
const runOut = (r: RunRow) => ({ ...r, secret: r.secret.name, emergency: r.kind === 'rotation' && r.graceMs === 0, startedAt: r.startedAt.toISOString(), finishedAt: iso(r.finishedAt) });
const runSelect = { id: true, kind: true, trigger: true, status: true, step: true, attempts: true, error: true, graceMs: true, startedAt: true, finishedAt: true, secret: { select: { name: true } } } as const;

const revision = z.object({ id: z.number().int(), hash: z.string(), appliedAt: z.string() });
const revisionParams = z.object({ id: positiveInt() });

async function revisionDocument(runtime: Runtime, id: number): Promise<Record<string, unknown>> {
  const row = await runtime.db.configRevision.findUnique({ where: { id } });
  if (!row) throw new ApiProblem('REKEY_API_NOT_FOUND', `no config revision ${id}`);
  return row.document as Record<string, unknown>;
}

export const historyRoutes = [
  route({
    method: 'GET',
    path: '/runs',
    operationId: 'listRuns',
    summary: 'Rotation, retirement and revocation runs, newest first, with their step, attempts and last error',
    scope: 'read',
    reach: 'some',
    query: z.object({
      ...pageQuery,
      after: z.uuid().optional().describe('a run id: runs started before it'),
      secret: z.string().max(200).optional(),
      status: z.enum(['running', 'succeeded', 'rolled_back', 'failed', 'skipped']).optional(),
      kind: z.enum(['rotation', 'retirement', 'revocation']).optional(),
    }),
    response: pageOf(run),
    handler: async ({ runtime, caller, query }) => {
      const names = await readable(runtime, caller);
      if (query.secret && names && !names.includes(query.secret)) throw new ApiProblem('REKEY_API_FORBIDDEN', 'needs scope read');
      const after = query.after ? await runtime.db.run.findUnique({ where: { id: query.after }, select: { startedAt: true, id: true } }) : null;
      const rows = await runtime.db.run.findMany({
        where: {
          ...(query.status ? { status: query.status } : {}),
          ...(query.kind ? { kind: query.kind } : {}),
          ...(query.secret ? { secret: { name: query.secret } } : names ? { secret: { name: { in: names } } } : {}),
          ...(after ? { OR: [{ startedAt: { lt: after.startedAt } }, { startedAt: after.startedAt, id: { lt: after.id } }] } : {}),
        },
        orderBy: [{ startedAt: 'desc' }, { id: 'desc' }],
        take: query.limit + 1,
        select: runSelect,
      });
      const page = rows.slice(0, query.limit);
      return { items: page.map(runOut), next: rows.length > page.length ? page.at(-1)!.id : null };
    },
  }),
  route({
    method: 'GET',
    path: '/runs/:id',
    operationId: 'getRun',
    summary: 'One run with its steps: every audit event it wrote, in order',
    scope: 'read',
    reach: 'some',
    params: z.object({ id: z.uuid() }),
    response: run.extend({ steps: z.array(auditEvent) }),
    handler: async ({ runtime, caller, params }) => {
      const row = await runtime.db.run.findUnique({ where: { id: params.id }, select: runSelect });
      if (!row) throw new ApiProblem('REKEY_API_NOT_FOUND', `no run ${params.id}`);
      if (!caller.access.allows('read', row.secret.name)) throw new ApiProblem('REKEY_API_FORBIDDEN', 'needs scope read');
      const steps = await runtime.db.auditEvent.findMany({ where: { runId: params.id }, orderBy: { seq: 'asc' } });
      return { ...runOut(row), steps: steps.map(auditOut) };
    },
  }),
  route({
    method: 'GET',
    path: '/leaks',
    operationId: 'listLeaks',
    summary: 'Leak reports, newest first: source, matched version, outcome and the time from report to blocked',
    scope: 'read',
    reach: 'some',
    query: z.object({ ...pageQuery, after: z.uuid().optional().describe('a report id: reports received before it'), secret: z.string().max(200).optional() }),
    response: pageOf(
      z.object({
        id: z.string(),
        source: z.string(),
        fingerprint: z.string().max(SHORT_FINGERPRINT),
        secret: z.string().nullable(),
        version: z.number().int().nullable(),
        outcome: z.string(),
        receivedAt: z.string(),
        blockedAt: instant,
        leakToBlockedMs: z.number().nullable(),
      }),
    ),
    handler: async ({ runtime, caller, query }) => {
      const names = await readable(runtime, caller);
      if (query.secret && names && !names.includes(query.secret)) throw new ApiProblem('REKEY_API_FORBIDDEN', 'needs scope read');
      const secrets = await runtime.db.secret.findMany({ where: query.secret ? { name: query.secret } : names ? { name: { in: names } } : {}, select: { id: true, name: true } });
      const byId = new Map(secrets.map((s) => [s.id, s.name]));
      const after = query.after ? await runtime.db.leakReport.findUnique({ where: { id: query.after }, select: { receivedAt: true, id: true } }) : null;
      const rows = await runtime.db.leakReport.findMany({
        where: {
          ...(query.secret || names ? { secretId: { in: [...byId.keys()] } } : {}),
          ...(after ? { OR: [{ receivedAt: { lt: after.receivedAt } }, { receivedAt: after.receivedAt, id: { lt: after.id } }] } : {}),
        },
        orderBy: [{ receivedAt: 'desc' }, { id: 'desc' }],
        take: query.limit + 1,
      });
      const page = rows.slice(0, query.limit);
      const versions = await runtime.db.version.findMany({ where: { id: { in: page.flatMap((r) => (r.versionId ? [r.versionId] : [])) } }, select: { id: true, number: true } });
      const numbers = new Map(versions.map((v) => [v.id, v.number]));
      return {
        items: page.map((r) => ({
          id: r.id,
          source: r.source,
          fingerprint: shortFingerprint(r.fingerprint)!,
          secret: r.secretId ? (byId.get(r.secretId) ?? null) : null,
          version: r.versionId ? (numbers.get(r.versionId) ?? null) : null,
          outcome: r.outcome,
          receivedAt: r.receivedAt.toISOString(),
          blockedAt: iso(r.blockedAt),
          leakToBlockedMs: r.blockedAt ? r.blockedAt.getTime() - r.receivedAt.getTime() : null,
        })),
        next: rows.length > page.length ? page.at(-1)!.id : null,
      };
    },
  }),
  route({
    method: 'GET',
    path: '/audit',
    operationId: 'listAuditEvents',
    summary: 'Audit events, newest first, filtered by secret, action, actor and time',
    scope: 'read',
    reach: 'some',
    query: z.object({
      ...pageQuery,
      after: z.string().regex(/^\d{1,18}$/).optional().describe('a seq: events before it'), // 18 digits: always within bigint
      secret: z.string().max(200).optional(),
      action: z.string().max(100).optional(),
      actor: z.string().max(200).optional().describe('an actor; a kind alone (cli, oidc, token) finds every actor of it, oidc:<subject> that subject at every provider'),
      since: z.iso.datetime().optional(),
      until: z.iso.datetime().optional(),
    }),
    response: pageOf(auditEvent),
    handler: async ({ runtime, caller, query }) => {
      const names = await readable(runtime, caller);
      if (query.secret && names && !names.includes(query.secret)) throw new ApiProblem('REKEY_API_FORBIDDEN', 'needs scope read');
      const rows = await runtime.db.auditEvent.findMany({
        where: {
          ...(query.secret ? { secret: query.secret } : names ? { secret: { in: names } } : {}),
          ...(query.action ? { action: query.action } : {}),
          ...(query.actor ? actorWhere(query.actor) : {}),
          ...(query.since || query.until ? { at: { ...(query.since ? { gte: new Date(query.since) } : {}), ...(query.until ? { lt: new Date(query.until) } : {}) } } : {}),
          ...(query.after ? { seq: { lt: BigInt(query.after) } } : {}),
        },
        orderBy: { seq: 'desc' },
        take: query.limit + 1,
      });
      const page = rows.slice(0, query.limit);
      return { items: page.map(auditOut), next: rows.length > page.length ? page.at(-1)!.seq.toString() : null };
    },
  }),
  route({
    method: 'GET',
    path: '/config/revisions',
    operationId: 'listConfigRevisions',
    summary: 'Applied config revisions, newest first',
    scope: 'read',
    reach: 'all',
    query: z.object({ ...pageQuery, after: positiveInt().optional().describe('a revision id: revisions before it') }),
    response: pageOf(revision),
    handler: async ({ runtime, query }) => {
      const rows = await runtime.db.configRevision.findMany({
        where: query.after ? { id: { lt: query.after } } : {},
        orderBy: { id: 'desc' },
        take: query.limit + 1,
        select: { id: true, hash: true, appliedAt: true },
      });
      const page = rows.slice(0, query.limit);
      return { items: page.map((r) => ({ ...r, appliedAt: r.appliedAt.toISOString() })), next: rows.length > page.length ? String(page.at(-1)!.id) : null };
    },
  }),
  route({
    method: 'GET',
    path: '/config/revisions/:id',
    operationId: 'getConfigRevision',
    summary: 'One config revision as applied (${env:...} references unresolved)',
    scope: 'read',
    reach: 'all',
    params: revisionParams,
    response: z.object({ id: z.number().int(), document: z.record(z.string(), z.unknown()) }),
    handler: async ({ runtime, params }) => ({ id: params.id, document: await revisionDocument(runtime, params.id) }),
  }),
  route({
    method: 'GET',
    path: '/config/revisions/:id/diff',
    operationId: 'diffConfigRevisions',
    summary: 'What a revision changed from another (default: the one before it), section by section',
    scope: 'read',
    reach: 'all',
    params: revisionParams,
    query: z.object({ from: positiveInt().optional() }),
    response: z.object({
      from: z.number().int().nullable(),
      to: z.number().int(),
      sections: z.array(z.object({ section: z.string(), added: z.array(z.string()), changed: z.array(z.string()), removed: z.array(z.string()) })),
    }),
    handler: async ({ runtime, params, query }) => {
      const after = await revisionDocument(runtime, params.id);
      const from = query.from ?? (await runtime.db.configRevision.findFirst({ where: { id: { lt: params.id } }, orderBy: { id: 'desc' }, select: { id: true } }))?.id ?? null;
      const before = from === null ? {} : await revisionDocument(runtime, from);
      return { from, to: params.id, sections: diffDocuments(before, after).filter((s) => s.added.length || s.changed.length || s.removed.length) };
    },
  }),
];
