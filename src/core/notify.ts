/**
 * Alerts for a person (issue 16): core raises a {@link Notice} when something needs one, in
 * the transaction of the state change it reports (the repository methods' `notices` argument)
 * or, for a notice raised again at every pass, through the {@link Notifier} port. Either way it
 * lands in the notification outbox (src/db/outbox.ts); each worker's relay queues it per
 * destination (src/notify) and delivers it. Core never imports the queue.
 *
 * A notice carries names, version numbers, short fingerprints, error codes and times: never a
 * value, never free text a value could have been echoed into. Its id is stable (the same
 * occurrence always gets the same id), so a redelivery, or a notice raised again after a
 * retried job, can be dropped by the receiver.
 */
import { RekeyError } from './errors.js';
import { shortFingerprint } from './fingerprint.js';
import type { RunRecord, StateRepository, VersionRecord } from './model.js';

/** What a destination can subscribe to. */
export const NOTICE_TYPES = [
  'rotation.failed',
  'run.stuck',
  'leak.received',
  'leak.blocked',
  'secret.no-current',
  'drift.repeated',
  'store.drift',
  'audit.verify-failed',
  'rotation.due',
  'usage.anomaly',
  'version.still-used',
] as const;
export type NoticeType = (typeof NOTICE_TYPES)[number];

/** One alert, as every destination receives it. */
export interface Notice {
  /** Stable per occurrence (`rotation.failed.<runId>`): the Standard Webhooks `webhook-id`. */
  id: string;
  type: NoticeType;
  /** When it happened (ISO 8601). */
  at: string;
  /** The secret it is about, when there is one. */
  secret: string | null;
  /** Names, numbers, codes and times only. */
  data: Readonly<Record<string, string | number | boolean | null>>;
}

export interface Notifier {
  /**
   * Records `notice` for delivery, durably, in a transaction of its own: src/db/outbox.ts writes
   * it to the notification outbox, which each worker's relay moves to the queue (at least once).
   * Idempotent per notice id. For a notice that reports a state change, prefer the repository
   * method that makes the change (its `notices` argument): the notice then commits with it.
   * @throws when it cannot be recorded; the caller's job is retried and raises it again.
   */
  notify(notice: Notice): Promise<void>;
}

/** The error code in an error or a stored error text (`REKEY_ERR_UNAVAILABLE`), never its message. */
export function errorCode(error: unknown): string | null {
  if (error instanceof RekeyError) return error.code;
  const text = typeof error === 'string' ? error : '';
  return /\bREKEY_ERR_[A-Z_]+\b/.exec(text)?.[0] ?? null;
}

/** The notice of `type` about `secret`, at the engine's time; its id is `<type>.<key>`. */
export function notice(deps: { now?: () => Date }, type: NoticeType, key: string, secret: string | null, data: Notice['data']): Notice {
  const at = (deps.now ? deps.now() : new Date()).toISOString();
  return { id: `${type}.${key}`, type, at, secret, data };
}

/** Raises a notice of `type` about `secret` in a transaction of its own (see {@link Notifier.notify}). */
export function notify(deps: { notifier: Notifier; now?: () => Date }, type: NoticeType, key: string, secret: string | null, data: Notice['data']): Promise<void> {
  return deps.notifier.notify(notice(deps, type, key, secret, data));
}

/**
 * A rotation that gave up (rolled back after its last attempt, or failed where it could not be
 * rolled back): `rotation.failed` (an emergency rotation that starts over with a fresh version too: `restarted`), then `secret.no-current` when the secret is left without a
 * current version (its first rotation failed, or a leaked key is blocked and the replacement
 * keeps failing).
 */
export async function rotationGaveUp(
  deps: { notifier: Notifier; now?: () => Date; repo: Pick<StateRepository, 'currentVersion'> },
  run: RunRecord,
  outcome: { status: 'rolled_back' | 'failed' | 'restarted'; step: string; error: unknown },
): Promise<void> {
  const data = { runId: run.id, trigger: run.trigger, status: outcome.status, step: outcome.step, code: errorCode(outcome.error) };
  // An emergency rotation starts over until a version is current: the id is per run, so its tries make one notice.
  await notify(deps, 'rotation.failed', run.id, run.secret, data);
  if (!(await deps.repo.currentVersion(run.secretId))) await notify(deps, 'secret.no-current', run.id, run.secret, data);
}

/** A leaked version refused at every target: `leak.blocked`, once per version, with the leak-to-blocked time. */
export function leakBlocked(deps: { now?: () => Date }, version: VersionRecord, receivedAt: Date, blockedAt: Date): Notice {
  return notice(deps, 'leak.blocked', version.id, version.secret, {
    version: version.number,
    fingerprint: shortFingerprint(version.fingerprint),
    receivedAt: receivedAt.toISOString(),
    blockedAt: blockedAt.toISOString(),
    seconds: (blockedAt.getTime() - receivedAt.getTime()) / 1000,
  });
}
