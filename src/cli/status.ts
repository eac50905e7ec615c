/** `rekey status`: versions with their states, per-target delivery, runs and the next rotation. */
import { humanDuration } from '../core/duration.js';
import { DRIFT_STREAK_ALERT, DRIFT_WINDOW_MS } from '../core/sync.js';
import type { Prisma } from '../db/generated/client.js';
import { stillUsed } from '../core/usage-retire.js';
import type { Runtime } from '../runtime.js';
import type { SyncStatus } from '../dashboard/client/rows.js';

export interface SecretStatus {
  name: string;
  /** Per-client keys: the family and the client. */
  family: string | null;
  client: string | null;
  removed: boolean;
  nextRotation: string | null;
  /** Why `nextRotation` is unknown (Redis unreachable), rather than "not scheduled". */
  scheduleUnknown: string | null;
  versions: Array<{
    number: number;
    state: string;
    fingerprint: string | null;
    createdAt: string;
    promotedAt: string | null;
    graceEndsAt: string | null;
    retiredAt: string | null;
    revokedAt: string | null;
    compromisedAt: string | null;
    /** When a leaked version was first refused by every target. */
    blockedAt: string | null;
    /** When a usage source last saw it used (docs/usage.md). */
    lastUsedAt: string | null;
    /** A previous version used within its secret's in-use window (`retire.whenUnusedFor`, else 10 min): retiring it would cut someone off. Null for other states. */
    stillUsed: boolean | null;
    /** The rotation run that issued it, and what triggered that run (cron, manual, event, leak). */
    issuedBy: { runId: string; trigger: string } | null;
    deliveries: Array<{ target: string; status: string; attempts: number; lastError: string | null }>;
  }>;
  /** `emergency`: a rotation replacing a leaked key, retried until a version is current. */
  activeRun: { id: string; kind: string; step: string; attempts: number; error: string | null; emergency: boolean } | null;
  /** The latest finished run, when it did not succeed (rolled back or failed): its step and error stay visible until a later run succeeds. */
  lastFailedRun: { id: string; kind: string; status: string; step: string; attempts: number; error: string | null; finishedAt: string | null } | null;
  /** Rotation metadata `rekey apply` could not write to the store (src/events/rotation-metadata.ts), retried until it is. */
  rotationMetadata: { pendingSince: string; error: string } | null;
  /** Per target: what the drift check last found (src/core/drift.ts). */
  sync: SyncStatus[];
}

/** The secrets `rekey status NAME` shows: that one, or every client of a family of that name; every secret without a name. */
export function statusWhere(name: string | undefined): Prisma.SecretWhereInput {
  // A family's name shows all its clients.
  return name ? { OR: [{ name }, { name: { startsWith: `${name}/` }, spec: { path: ['family'], equals: name } }] } : {};
}

/**
 * @param redisUp false when Redis is unreachable: the schedules are then reported unknown, not read.
 * @param page at most `limit` secrets, by name, after `after`: the only rows read.
 */
export async function secretStatus(runtime: Runtime, name?: string, versionsPerSecret = 5, redisUp = true, page: { after?: string | undefined; limit?: number } = {}): Promise<SecretStatus[]> {
  const unreachable = 'cannot read the schedules: Redis is unreachable';
  const next = async (secret: string): Promise<{ nextRotation: string | null; scheduleUnknown: string | null }> => {
    if (!redisUp) return { nextRotation: null, scheduleUnknown: unreachable };
    return runtime.queues.nextRotation(secret).then(
      (date) => ({ nextRotation: date?.toISOString() ?? null, scheduleUnknown: null }),
      () => ({ nextRotation: null, scheduleUnknown: unreachable }),
    );
  };
  const secrets = await runtime.db.secret.findMany({
    where: { AND: [statusWhere(name), page.after === undefined ? {} : { name: { gt: page.after } }] },
    orderBy: { name: 'asc' },
    ...(page.limit === undefined ? {} : { take: page.limit }),
    include: {
      versions: { orderBy: { number: 'desc' }, take: versionsPerSecret, include: { deliveries: { orderBy: { target: 'asc' } } } },
      runs: { where: { status: 'running' }, orderBy: { startedAt: 'desc' }, take: 1 },
      syncs: { orderBy: { target: 'asc' } },
    },
  });
  const issuing = await runtime.db.run.findMany({
    where: { kind: 'rotation', versionId: { in: secrets.flatMap((s) => s.versions.map((v) => v.id)) } },
    select: { id: true, versionId: true, trigger: true },
  });
  const issuedBy = new Map(issuing.map((r) => [r.versionId, { runId: r.id, trigger: r.trigger }]));
  // Skipped runs (stale or joined triggers) say nothing about the secret's health.
  const finished = await Promise.all(
    secrets.map((s) => runtime.db.run.findFirst({ where: { secretId: s.id, status: { in: ['succeeded', 'rolled_back', 'failed'] } }, orderBy: { finishedAt: 'desc' } })),
  );
  // The in-use window of each secret with a previous version (its retire: policy).
  const retireOf = new Map(
    await Promise.all(
      secrets
        .filter((s) => s.versions.some((v) => v.state === 'previous'))
        .map(async (s) => [s.name, await runtime.resolver.policy(s.name).catch(() => ({}))] as const),
    ),
  );
  const at = new Date();
  return Promise.all(
    secrets.map(async (s, i) => ({
      name: s.name,
      family: (s.spec as { family?: string }).family ?? null,
      client: (s.spec as { client?: string }).client ?? null,
      removed: s.removedAt !== null,
      ...(s.removedAt ? { nextRotation: null, scheduleUnknown: null } : await next(s.name)),
      versions: s.versions.map((v) => ({
        number: v.number,
        state: v.state,
        fingerprint: v.fingerprint,
        createdAt: v.createdAt.toISOString(),
        promotedAt: v.promotedAt?.toISOString() ?? null,
        graceEndsAt: v.graceEndsAt?.toISOString() ?? null,
        retiredAt: v.retiredAt?.toISOString() ?? null,
        revokedAt: v.revokedAt?.toISOString() ?? null,
        compromisedAt: v.compromisedAt?.toISOString() ?? null,
        blockedAt: v.blockedAt?.toISOString() ?? null,
        lastUsedAt: v.lastUsedAt?.toISOString() ?? null,
        stillUsed: v.state === 'previous' ? stillUsed(v, retireOf.get(s.name) ?? {}, at) : null,
        issuedBy: issuedBy.get(v.id) ?? null,
        deliveries: v.deliveries.map((d) => ({ target: d.target, status: d.status, attempts: d.attempts, lastError: d.lastError })),
      })),
      activeRun: s.runs[0]
        ? { id: s.runs[0].id, kind: s.runs[0].kind, step: s.runs[0].step, attempts: s.runs[0].attempts, error: s.runs[0].error, emergency: s.runs[0].kind === 'rotation' && s.runs[0].graceMs === 0 }
        : null,
      lastFailedRun: (() => {
        const run = finished[i];
        if (!run || run.status === 'succeeded') return null;
        return { id: run.id, kind: run.kind, status: run.status, step: run.step, attempts: run.attempts, error: run.error, finishedAt: run.finishedAt?.toISOString() ?? null };
      })(),
      rotationMetadata: s.metadataPendingAt && s.metadataError ? { pendingSince: s.metadataPendingAt.toISOString(), error: s.metadataError } : null,
      sync: s.syncs.map((y) => {
        const repeating = y.driftStreak >= DRIFT_STREAK_ALERT && y.lastDriftAt !== null && Date.now() - y.lastDriftAt.getTime() <= DRIFT_WINDOW_MS;
        const iso = (d: Date | null) => d?.toISOString() ?? null;
        return {
          target: y.target,
          lastCheckedAt: iso(y.lastCheckedAt),
          lastInSyncAt: iso(y.lastInSyncAt),
          lastDriftAt: iso(y.lastDriftAt),
          lastDrift: y.lastDrift,
          lastRepairedAt: iso(y.lastRepairedAt),
          lastError: y.lastError,
          lastErrorAt: iso(y.lastErrorAt),
          driftStreak: y.driftStreak,
          warning: repeating ? `drifted ${y.driftStreak} times in a row: something outside rekey keeps changing ${y.target}` : null,
        };
      }),
    })),
  );
}

export function formatStatus(statuses: readonly SecretStatus[], now = new Date()): string {
  if (!statuses.length) return 'No managed secrets. Apply a config with `rekey apply -f rekey.yaml`.';
  return statuses
    .map((s) => {
      const lines = [`${s.name}${s.client ? ` (client ${s.client} of ${s.family})` : ''}${s.removed ? ' (removed from config)' : ''}`];
      lines.push(`  next rotation: ${s.nextRotation ?? (s.scheduleUnknown ? `unknown (${s.scheduleUnknown})` : s.removed ? '-' : 'not scheduled')}`);
      if (s.removed && s.versions.some((v) => !['revoked', 'failed'].includes(v.state))) {
        lines.push(`  ! its keys stay live until \`rekey decommission ${s.name}\` (leaks and \`rekey revoke\` still reach them)`);
      }
      if (s.activeRun?.emergency && !s.versions.some((v) => v.state === 'current' && !v.compromisedAt)) {
        lines.push(`  ! no working current version: emergency rotation retrying until one is promoted (attempt ${s.activeRun.attempts})`);
      }
      if (s.activeRun) lines.push(`  running: ${s.activeRun.kind} ${s.activeRun.id} at ${s.activeRun.step} (attempt ${s.activeRun.attempts}${s.activeRun.error ? `, last error: ${s.activeRun.error}` : ''})`);
      const failed = s.lastFailedRun;
      if (failed) lines.push(`  last ${failed.kind} ${failed.status.replace('_', ' ')} at ${failed.step} (attempt ${failed.attempts}${failed.finishedAt ? `, ${failed.finishedAt}` : ''}): ${failed.error ?? 'no error recorded'}`);
      for (const v of s.versions) {
        const extra = v.state === 'previous' && v.graceEndsAt ? `, accepted for ${humanDuration(Math.max(0, Date.parse(v.graceEndsAt) - now.getTime()))} more` : '';
        const leaked = v.compromisedAt ? ', reported leaked' : '';
        lines.push(`  v${v.number}  ${v.state.padEnd(11)} ${v.fingerprint?.slice(0, 12) ?? '-'.padEnd(12)}  created ${v.createdAt}${extra}${leaked}${usageText(s, v, now)}`);
        for (const d of v.deliveries) lines.push(`        ${d.target}: ${d.status}${d.lastError ? ` (${d.lastError})` : ''}`);
      }
      if (!s.versions.length) lines.push('  no versions yet: `rekey rotate ' + s.name + '`');
      if (s.rotationMetadata) {
        lines.push(`  ! rotation metadata not written to the store since ${s.rotationMetadata.pendingSince}: ${s.rotationMetadata.error} (workers retry it every minute)`);
      }
      for (const y of s.sync) lines.push(`  sync ${y.target}: ${syncLine(y, now)}`, ...(y.warning ? [`  ! ${y.warning}`] : []));
      return lines.join('\n');
    })
    .join('\n\n');
}

/** A version's last use; for a previous version, whether it is still in use and by whom. */
function usageText(s: SecretStatus, v: SecretStatus['versions'][number], now: Date): string {
  const last = v.lastUsedAt ? `last used ${humanDuration(Math.max(0, now.getTime() - Date.parse(v.lastUsedAt)))} ago` : '';
  if (v.stillUsed) return `, STILL IN USE${s.client ? ` by client ${s.client}` : ''} (${last})`;
  return last ? `, ${last}` : '';
}

function syncLine(y: SecretStatus['sync'][number], now: Date): string {
  const ago = (iso: string) => `${humanDuration(Math.max(0, now.getTime() - Date.parse(iso)))} ago`;
  const state = y.lastCheckedAt === y.lastInSyncAt ? 'in sync' : y.lastRepairedAt && y.lastCheckedAt && y.lastRepairedAt >= y.lastCheckedAt ? 'repaired' : 'NOT in sync';
  const parts = [y.lastCheckedAt ? `${state}, checked ${ago(y.lastCheckedAt)}` : 'never checked'];
  if (y.lastDriftAt) parts.push(`last drift ${ago(y.lastDriftAt)} (${y.lastDrift ?? '?'})${y.lastRepairedAt && y.lastRepairedAt >= y.lastDriftAt ? `, repaired ${ago(y.lastRepairedAt)}` : ''}`);
  if (y.lastErrorAt) parts.push(`last error ${ago(y.lastErrorAt)}: ${y.lastError ?? ''}`);
  return parts.join('; ');
}
