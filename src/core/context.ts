import { timed } from './call.js';
import { RekeyError, describeError } from './errors.js';
import type { Fingerprinter } from './fingerprint.js';
import type { Logger } from './logger.js';
import type { Notifier } from './notify.js';
import type { AuditContext, EngineEvents, SecretChange, StateRepository, VersionRecord, WorkQueue } from './model.js';
import type { Call, IssuedRef, StoredRef, VersionRef } from './ports.js';
import type { ProviderResolver } from './resolved.js';
import type { SyncRepository } from './sync.js';

/** Everything the engine's steps share. */
export interface EngineDeps {
  repo: StateRepository;
  queue: WorkQueue;
  /** The per-target sync status (drift.ts). */
  sync: SyncRepository;
  providers: ProviderResolver;
  fingerprint: Fingerprinter;
  log: Logger;
  events: EngineEvents;
  /** Alerts for a person (notify.ts); src/notify delivers them to the configured destinations. */
  notifier: Notifier;
  /**
   * Tells delivery clients of a change once it is committed (src/delivery/change-feed.ts:
   * Redis pub/sub to every server replica). Best effort and never awaited: a client that
   * missed one finds the new version when its value expires.
   */
  announce?: (change: SecretChange) => void;
  /** Who acts, for the audit log (`worker`, `server`, `cli`). */
  actor: string;
  /** How long a rotation run's lease lasts without renewal. @defaultValue 30000 */
  leaseMs?: number;
  now?: () => Date;
}

/** Announces a committed change, if anyone listens; never throws. */
export function announce(deps: EngineDeps, change: SecretChange): void {
  try {
    deps.announce?.(change);
  } catch (error) {
    deps.log.warn({ secret: change.secret, error: describeError(error) }, 'could not announce a change to delivery clients');
  }
}

export function now(deps: EngineDeps): Date {
  return deps.now ? deps.now() : new Date();
}

/**
 * How far workers' clocks may disagree without cutting a grace short. A previous version's
 * retirement is due this long after its `graceEndsAt`, and a worker skips one that is not
 * due yet by its own clock, so a worker up to this far ahead still retires it after the grace.
 */
export const CLOCK_TOLERANCE_MS = 1000;

/** When the retirement of a version whose grace ends at `graceEndsAt` is due. */
export function retirementDue(graceEndsAt: Date): Date {
  return new Date(graceEndsAt.getTime() + CLOCK_TOLERANCE_MS);
}

export function audit(deps: EngineDeps, runId?: string): AuditContext {
  return runId === undefined ? { actor: deps.actor } : { actor: deps.actor, runId };
}

/** The ref providers see. Fingerprint is empty before issue() has produced a value. */
export function versionRef(version: VersionRecord, consumer: string): VersionRef {
  return {
    secret: version.secret,
    versionId: version.id,
    number: version.number,
    fingerprint: version.fingerprint ?? '',
    consumer,
  };
}

export function storedRef(version: VersionRecord, consumer: string): StoredRef {
  if (!version.storeVersionId) throw new RekeyError('REKEY_ERR_INVALID', `version ${version.number} of ${version.secret} was never stored`);
  return { ...versionRef(version, consumer), storeVersionId: version.storeVersionId };
}

export function issuedRef(version: VersionRecord, consumer: string): IssuedRef {
  return { ...versionRef(version, consumer), issuerState: version.issuerState ?? {} };
}

/** Which provider a call goes to and what it asks. */
export interface CallSite {
  /** The provider instance's name in rekey.yaml (an inline issuer's type). */
  provider: string;
  /** Role and method: `store.promote`, `target.deploy`, ... */
  op: string;
  /** A drift repair's generation, passed on as {@link Call.generation}. */
  generation?: string;
}

/**
 * A provider call under the secret's timeout, logged with its duration (never its
 * arguments) and reported to EngineEvents.providerCalled: outcome `ok`, or the error's
 * code (`timeout`, `unavailable`, ...; `error` for an error without one).
 */
export async function providerCall<T>(deps: Pick<EngineDeps, 'events'>, log: Logger, site: CallSite, timeoutMs: number, fn: (call: Call) => Promise<T>): Promise<T> {
  const started = performance.now();
  const finished = (outcome: string) => {
    const ms = performance.now() - started;
    log.debug({ call: site.op, provider: site.provider, ms: Math.round(ms), ...(outcome === 'ok' ? {} : { failed: outcome }) }, 'provider call');
    deps.events.providerCalled(site.provider, site.op, outcome, ms / 1000);
  };
  try {
    const result = await timed(`${site.op}:${site.provider}`, timeoutMs, fn, site.generation);
    finished('ok');
    return result;
  } catch (error) {
    finished(error instanceof RekeyError ? error.code.replace(/^REKEY_ERR_/, '').toLowerCase() : 'error');
    throw error;
  }
}

/**
 * Records a failed step's error on its run, best effort: the text is diagnostic, and a run
 * whose bookkeeping write fails must still roll back (or be retried), never stop there.
 * `log` is the run's (its id bound). With `leaseOwner` (a rotation's RunLease.owner), only while it
 * holds the open run: returns false when the write was refused for that (the lease is lost), true otherwise.
 */
export async function noteRunError(deps: EngineDeps, runId: string, reason: string, log: Logger, leaseOwner?: string): Promise<boolean> {
  try {
    return await deps.repo.recordRunError(runId, reason, leaseOwner);
  } catch (error) {
    log.error({ error: describeError(error) }, 'could not record the run error; carrying on');
    return true;
  }
}
