/** GET /secrets (paged, by name glob and status) and GET /secrets/:name (versions, delivery, sync, runs). */
import { z } from 'zod';
import { SHORT_FINGERPRINT, shortFingerprint } from '../core/fingerprint.js';
import { secretStatus } from '../cli/status.js';
import type { Runtime } from '../runtime.js';
import { ApiProblem } from './problems.js';
import { instant, iso, pageOf, pageQuery, route, secretParams } from './route.js';
import { globRegExp } from './scopes.js';
import { filterHealth, nextRotation, secretHealth, type SecretHealth } from './secret-health.js';
import { CONDITIONS, STATUSES } from './statuses.js';

export { SHORT_FINGERPRINT, shortFingerprint };

const fingerprint = z.string().max(SHORT_FINGERPRINT).nullable().describe('first 12 hex characters of the HMAC fingerprint');

const summary = z.object({
  name: z.string(),
  family: z.string().nullable(),
  client: z.string().nullable(),
  removed: z.boolean(),
  status: z.enum(STATUSES),
  conditions: z.array(z.enum(CONDITIONS)),
  currentVersion: z.number().int().nullable(),
  lastRotatedAt: instant,
  nextRotation: instant.describe('null: not scheduled, or the schedules cannot be read (Redis unreachable)'),
  lastRun: z.object({ id: z.string(), status: z.string(), finishedAt: instant, error: z.string().nullable() }).nullable(),
});

const version = z.object({
  number: z.number().int(),
  state: z.string(),
  fingerprint,
  issuedAt: z.string(),
  promotedAt: instant,
  graceEndsAt: instant,
  retiredAt: instant,
  revokedAt: instant,
  compromisedAt: instant,
  blockedAt: instant,
  lastUsedAt: instant.describe('when a usage source last saw it used (docs/usage.md)'),
  stillUsed: z.boolean().nullable().describe('a previous version used within its in-use window (retire.whenUnusedFor, else 10 min); null for other states'),
  issuedBy: z.object({ runId: z.string(), trigger: z.string() }).nullable(),
  deliveries: z.array(z.object({ target: z.string(), status: z.string(), attempts: z.number().int(), lastError: z.string().nullable() })),
});

const sync = z.object({
  target: z.string(),
  lastCheckedAt: instant,
  lastInSyncAt: instant,
  lastDriftAt: instant,
  lastDrift: z.string().nullable(),
  lastRepairedAt: instant,
  lastError: z.string().nullable(),
  lastErrorAt: instant,
  driftStreak: z.number().int(),
  warning: z.string().nullable(),
});

const detail = summary.extend({
  versions: z.array(version),
  sync: z.array(sync),
  activeRun: z.object({ id: z.string(), kind: z.string(), step: z.string(), attempts: z.number().int(), error: z.string().nullable(), emergency: z.boolean() }).nullable(),
});

function summaryOf(h: SecretHealth, next: Date | null): z.input<typeof summary> {
  const { id: _id, lastRotatedAt, lastRun, ...rest } = h;
  return { ...rest, lastRotatedAt: iso(lastRotatedAt), nextRotation: iso(h.removed ? null : next), lastRun: lastRun && { ...lastRun, finishedAt: iso(lastRun.finishedAt) } };
}

/** The summaries of a page of secrets: their schedules in one Redis command (none when Redis cannot be read). */
async function summariesOf(runtime: Runtime, page: readonly SecretHealth[]): Promise<Array<z.input<typeof summary>>> {
  const next = await runtime.queues.nextRotations(page.map((h) => h.name)).catch(() => new Map<string, Date>());
  return page.map((h) => summaryOf(h, next.get(h.name) ?? null));
}

/** Names read from the database per step of a listing: a listing holds this many rows at most, whatever the fleet's size. */
const SCAN_PAGE = 1000;

/**
 * The first `limit + 1` secrets after `after`, by name, that the filter lets through, read a page
 * at a time. Without a status filter, names are read first and health computed only for as many
 * as the page needs that the glob and `may` pass; with one, the database computes health only for
 * the secrets that may meet it (see secretHealth's `status`), as many as the page still needs.
 */
async function listHealth(runtime: Runtime, filter: Parameters<typeof filterHealth>[1], after: string | undefined, limit: number): Promise<SecretHealth[]> {
  const named = filter.name ? globRegExp(filter.name) : undefined;
  const passes = (name: string) => (!named || named.test(name)) && (!filter.may || filter.may(name));
  const matching: SecretHealth[] = [];
  for (let from = after; matching.length <= limit; ) {
    // As many as the page still needs, with room for the ones a glob or the caller's scopes leave out.
    const page = Math.min(SCAN_PAGE, Math.max(2 * (limit + 1 - matching.length), 100));
    let read: number;
    if (filter.status) {
      const rows = await secretHealth(runtime.db, { status: filter.status, ...(from === undefined ? {} : { after: from }), limit: page });
      matching.push(...filterHealth(rows, filter));
      [read, from] = [rows.length, rows.at(-1)?.name];
    } else {
      const names = (await runtime.db.secret.findMany({ where: from === undefined ? {} : { name: { gt: from } }, select: { name: true }, orderBy: { name: 'asc' }, take: page })).map((r) => r.name);
      const needed = names.filter(passes).slice(0, limit + 1 - matching.length);
      if (needed.length) matching.push(...filterHealth(await secretHealth(runtime.db, { names: needed }), filter));
      [read, from] = [names.length, names.at(-1)];
    }
    if (read < page) break;
  }
  return matching;
}

export const secretRoutes = [
  route({
    method: 'GET',
    path: '/secrets',
    operationId: 'listSecrets',
    summary: 'Secrets the token may read, by name; filtered by name glob and status',
    scope: 'read',
    reach: 'some',
    query: z.object({
      ...pageQuery,
      name: z.string().max(200).optional().describe('a glob: payments-*'),
      status: z.enum(STATUSES).optional().describe('secrets meeting this condition (healthy: none)'),
    }),
    response: pageOf(summary),
    handler: async ({ runtime, caller, query }) => {
      const filter = { name: query.name, status: query.status, may: (name: string) => caller.access.allows('read', name) };
      const matching = await listHealth(runtime, filter, query.after, query.limit);
      const page = matching.slice(0, query.limit);
      return {
        items: await summariesOf(runtime, page),
        next: matching.length > page.length ? page.at(-1)!.name : null,
      };
    },
  }),
  route({
    method: 'GET',
    path: '/secrets/:name',
    operationId: 'getSecret',
    summary: 'One secret: its versions (states, short fingerprints, times, what issued them), per-target delivery and sync, the running run',
    scope: 'read',
    reach: 'secret',
    params: secretParams,
    query: z.object({ versions: z.coerce.number().int().min(1).max(500).default(20).describe('newest versions to show') }),
    response: detail,
    handler: async ({ runtime, params, query }) => {
      const [health] = await secretHealth(runtime.db, params.name);
      // The schedule comes with the summary: secretStatus need not read it again (redisUp false).
      const [status] = health ? (await secretStatus(runtime, params.name, query.versions, false)).filter((s) => s.name === params.name) : [];
      if (!health || !status) throw new ApiProblem('REKEY_API_NOT_FOUND', `no secret named ${params.name}`);
      return {
        ...summaryOf(health, await nextRotation(runtime.queues, health)),
        versions: status.versions.map(({ createdAt, fingerprint: full, ...v }) => ({ ...v, issuedAt: createdAt, fingerprint: shortFingerprint(full) })),
        sync: status.sync,
        activeRun: status.activeRun,
      };
    },
  }),
];
