/** `rekey status`: versions with their states, per-target delivery, runs and the next rotation. */
import { humanDuration } from '../core/duration.js';
import type { Runtime } from '../runtime.js';

export interface SecretStatus {
  name: string;
  /** Per-client keys: the family and the client. */
  family: string | null;
  client: string | null;
  removed: boolean;
  nextRotation: string | null;
  versions: Array<{
    number: number;
    state: string;
    fingerprint: string | null;
    createdAt: string;
    promotedAt: string | null;
    graceEndsAt: string | null;
    compromisedAt: string | null;
    deliveries: Array<{ target: string; status: string; attempts: number; lastError: string | null }>;
  }>;
  activeRun: { id: string; kind: string; step: string; attempts: number; error: string | null } | null;
}

export async function secretStatus(runtime: Runtime, name?: string, versionsPerSecret = 5): Promise<SecretStatus[]> {
  const secrets = await runtime.db.secret.findMany({
    // A family's name shows all its clients.
    where: name ? { OR: [{ name }, { name: { startsWith: `${name}/` }, spec: { path: ['family'], equals: name } }] } : {},
    orderBy: { name: 'asc' },
    include: {
      versions: { orderBy: { number: 'desc' }, take: versionsPerSecret, include: { deliveries: { orderBy: { target: 'asc' } } } },
      runs: { where: { status: 'running' }, orderBy: { startedAt: 'desc' }, take: 1 },
    },
  });
  return Promise.all(
    secrets.map(async (s) => ({
      name: s.name,
      family: (s.spec as { family?: string }).family ?? null,
      client: (s.spec as { client?: string }).client ?? null,
      removed: s.removedAt !== null,
      nextRotation: s.removedAt ? null : ((await runtime.queues.nextRotation(s.name).catch(() => undefined))?.toISOString() ?? null),
      versions: s.versions.map((v) => ({
        number: v.number,
        state: v.state,
        fingerprint: v.fingerprint,
        createdAt: v.createdAt.toISOString(),
        promotedAt: v.promotedAt?.toISOString() ?? null,
        graceEndsAt: v.graceEndsAt?.toISOString() ?? null,
        compromisedAt: v.compromisedAt?.toISOString() ?? null,
        deliveries: v.deliveries.map((d) => ({ target: d.target, status: d.status, attempts: d.attempts, lastError: d.lastError })),
      })),
      activeRun: s.runs[0] ? { id: s.runs[0].id, kind: s.runs[0].kind, step: s.runs[0].step, attempts: s.runs[0].attempts, error: s.runs[0].error } : null,
    })),
  );
}

export function formatStatus(statuses: readonly SecretStatus[], now = new Date()): string {
  if (!statuses.length) return 'No managed secrets. Apply a config with `rekey apply -f rekey.yaml`.';
  return statuses
    .map((s) => {
      const lines = [`${s.name}${s.client ? ` (client ${s.client} of ${s.family})` : ''}${s.removed ? ' (removed from config)' : ''}`];
      lines.push(`  next rotation: ${s.nextRotation ?? (s.removed ? '-' : 'not scheduled')}`);
      if (s.activeRun) lines.push(`  running: ${s.activeRun.kind} ${s.activeRun.id} at ${s.activeRun.step} (attempt ${s.activeRun.attempts}${s.activeRun.error ? `, last error: ${s.activeRun.error}` : ''})`);
      for (const v of s.versions) {
        const extra = v.state === 'previous' && v.graceEndsAt ? `, accepted for ${humanDuration(Math.max(0, Date.parse(v.graceEndsAt) - now.getTime()))} more` : '';
        const leaked = v.compromisedAt ? ', reported leaked' : '';
        lines.push(`  v${v.number}  ${v.state.padEnd(11)} ${v.fingerprint?.slice(0, 12) ?? '-'.padEnd(12)}  created ${v.createdAt}${extra}${leaked}`);
        for (const d of v.deliveries) lines.push(`        ${d.target}: ${d.status}${d.lastError ? ` (${d.lastError})` : ''}`);
      }
      if (!s.versions.length) lines.push('  no versions yet: `rekey rotate ' + s.name + '`');
      return lines.join('\n');
    })
    .join('\n\n');
}
