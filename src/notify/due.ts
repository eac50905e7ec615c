/**
 * `rotation.due`: a secret without a `schedule` is rotated by hand or by events, and nothing
 * rotates it when nobody does. With `notifications.rotationDue: { every, within }`, its current
 * version is due `every` after it was promoted, and the notice is raised from `within` before
 * that. Workers check hourly on their own clocks (housekeeping); the notice id is per current
 * version, so every replica and every pass raise one notice, and the next version its own.
 */
import { shortFingerprint } from '../core/fingerprint.js';
import { notify, type Notifier } from '../core/notify.js';
import type { Db } from '../db/client.js';
import type { ConfigResolver } from '../resolver.js';

export interface DueDeps {
  db: Db;
  resolver: Pick<ConfigResolver, 'config'>;
  notifier: Notifier;
  now?: () => Date;
}

/** Raises rotation.due for every current version of an unscheduled secret that is due soon; returns how many. */
export async function raiseRotationsDue(deps: DueDeps): Promise<number> {
  const config = await deps.resolver.config();
  const rule = config.notifications?.rotationDue;
  if (!rule) return 0;
  const unscheduled = Object.values(config.secrets).filter((s) => !s.schedule).map((s) => s.name);
  if (!unscheduled.length) return 0;
  const now = (deps.now ?? (() => new Date()))();
  const current = await deps.db.version.findMany({
    where: { state: 'current', secret: { name: { in: unscheduled }, removedAt: null } },
    select: { id: true, number: true, fingerprint: true, promotedAt: true, createdAt: true, secret: { select: { name: true } } },
  });
  let raised = 0;
  for (const version of current) {
    const promotedAt = version.promotedAt ?? version.createdAt;
    const dueAt = new Date(promotedAt.getTime() + rule.every);
    if (dueAt.getTime() - now.getTime() > rule.within) continue;
    await notify(deps, 'rotation.due', version.id, version.secret.name, {
      version: version.number,
      fingerprint: shortFingerprint(version.fingerprint),
      promotedAt: promotedAt.toISOString(),
      dueAt: dueAt.toISOString(),
      overdue: dueAt <= now,
    });
    raised += 1;
  }
  return raised;
}
