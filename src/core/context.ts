import { timed } from './call.js';
import { RekeyError } from './errors.js';
import type { Fingerprinter } from './fingerprint.js';
import type { Logger } from './logger.js';
import type { AuditContext, EngineEvents, StateRepository, VersionRecord, WorkQueue } from './model.js';
import type { Call, IssuedRef, StoredRef, VersionRef } from './ports.js';
import type { ProviderResolver } from './resolved.js';

/** Everything the engine's steps share. */
export interface EngineDeps {
  repo: StateRepository;
  queue: WorkQueue;
  providers: ProviderResolver;
  fingerprint: Fingerprinter;
  log: Logger;
  events: EngineEvents;
  /** Who acts, for the audit log (`worker`, `server`, `cli`). */
  actor: string;
  /** How long a rotation run's lease lasts without renewal. @defaultValue 30000 */
  leaseMs?: number;
  now?: () => Date;
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

/** A provider call under the secret's timeout, logged with its duration (never its arguments). */
export async function providerCall<T>(log: Logger, label: string, timeoutMs: number, fn: (call: Call) => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const result = await timed(label, timeoutMs, fn);
    log.debug({ call: label, ms: Math.round(performance.now() - started) }, 'provider call');
    return result;
  } catch (error) {
    log.debug({ call: label, ms: Math.round(performance.now() - started), failed: true }, 'provider call');
    throw error;
  }
}
