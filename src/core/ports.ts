/**
 * The three provider roles. Core (src/core/rotation.ts and friends) orders every
 * call; a provider only does what one method says. Every method receives a
 * {@link Call} whose signal aborts when rekey's per-call timeout expires.
 *
 * Errors: throw {@link ProviderError} with a code from errors.ts. Retryable codes
 * (UNAVAILABLE, THROTTLED, TIMEOUT, CONFLICT, VERIFY_FAILED) are retried with
 * backoff; the others end the run (and roll it back if it had not promoted).
 * Never put a value in an error message.
 */
import type { SecretValue } from './secret-value.js';

/** Per-call options. */
export interface Call {
  /** Aborted when the call's timeout expires or the worker shuts down. */
  signal: AbortSignal;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** What every provider learns about a version. Carries no value. */
export interface VersionRef {
  /** The managed secret's name in rekey.yaml. */
  secret: string;
  /** rekey's version id (a UUID). Stable across retries: use it as an idempotency key. */
  versionId: string;
  /** 1, 2, 3... per secret. */
  number: number;
  /** HMAC-SHA256 of the value under the server's fingerprint key (see ProviderContext.fingerprint). */
  fingerprint: string;
  /** Who the key belongs to: gateways attach it to the key (map value, consumer name). */
  consumer: string;
}

/** A version as written to its store. */
export interface StoredRef extends VersionRef {
  /** The store's own id for the version (AWS VersionId, GCP version number, ...). */
  storeVersionId: string;
}

/** A version together with the public state its issuer recorded (never a value). */
export interface IssuedRef extends VersionRef {
  issuerState: JsonObject;
}

/** Staging labels, named as rekey names them; each store maps them to its own (AWSCURRENT, an alias...). */
export type Stage = 'current' | 'previous' | 'pending';

export interface StoredVersion {
  storeVersionId: string;
  /** rekey's version id when the store recorded it (a tag, a label, a column), else undefined. */
  versionId: string | undefined;
  stages: Stage[];
}

/** A secret's rotation policy as rekey.yaml states it, for stores that can show it (see describeRotation). */
export interface RotationPolicy {
  /** The cron schedule rekey rotates on; undefined when rotation is manual or event-driven only. */
  schedule?: { cron: string; timezone: string } | undefined;
  /** How long the previous version stays accepted after a rotation. */
  graceMs: number;
}

/** Where values live. One instance serves one managed secret. */
export interface SecretStore {
  /**
   * Writes a value as the pending version. Idempotent per `version.versionId`: a retry after a
   * lost response returns the same storeVersionId and creates no second version.
   */
  writePending(version: VersionRef, value: SecretValue, call: Call): Promise<{ storeVersionId: string }>;
  /**
   * Reads a version by its store id, or whichever version holds a stage.
   * @throws ProviderError REKEY_ERR_NOT_FOUND when there is none.
   */
  read(selector: { storeVersionId: string } | { stage: Stage }, call: Call): Promise<SecretValue>;
  /**
   * Makes `next` current and `previous` (the old current, if any) previous; removes the pending
   * stage. Idempotent: promoting the version that is already current succeeds.
   */
  promote(next: StoredRef, previous: StoredRef | undefined, call: Call): Promise<void>;
  /** Removes or disables the version so nobody can read it again. Idempotent; absent is success. */
  destroy(version: StoredRef, call: Call): Promise<void>;
  /** Every version the store holds for this secret that is not destroyed. */
  list(call: Call): Promise<StoredVersion[]>;
  /**
   * Optional. Mirrors rekey's rotation policy into the store's own rotation metadata, so the cloud
   * console tells the truth about who rotates the secret and when. `rekey apply` calls it for added
   * and changed secrets; the rotation protocol never does. Idempotent. Without a schedule, it clears
   * only metadata that rekey itself set.
   * @returns a one-line summary of what the store now shows, for apply's output.
   * @throws ProviderError as any call; apply reports it per secret and keeps the applied config.
   */
  describeRotation?(policy: RotationPolicy, call: Call): Promise<string>;
}

/** What mints a new value and kills an old one upstream. One instance serves one managed secret. */
export interface Issuer {
  /**
   * Mints a new credential for `version` (its fingerprint is not known yet and is empty).
   * May be called again for the same versionId after a crash; it must then return a fresh
   * credential and may replace the one it made before. `state` is public data revoke() needs
   * later (a key id, a role name), stored in PostgreSQL: never a value.
   */
  issue(version: VersionRef, call: Call): Promise<{ value: SecretValue; state: JsonObject }>;
  /** Proves the credential works upstream (log in with it, call an API). @throws VERIFY_FAILED. */
  verify(version: IssuedRef, value: SecretValue, call: Call): Promise<void>;
  /** Kills the credential upstream. Idempotent; an unknown or already revoked credential is success. */
  revoke(version: IssuedRef, call: Call): Promise<void>;
  /**
   * Optional: public material relying parties fetch to check what the credential signs (a
   * public JWK, with `kid`), derived from the issuer state alone. `rekey server` publishes it
   * for pending, current and previous versions at /.well-known/jwks.json.
   */
  publicKey?(state: JsonObject): JsonObject | undefined;
}

/** One key a target currently accepts, as far as it can tell. */
export interface DeployedEntry {
  versionId?: string;
  fingerprint?: string;
  consumer?: string;
}

/** What must accept or use the value: a gateway, a workload's Secret, a webhook. One instance per secret. */
export interface Target {
  /**
   * Makes the target accept (or use) `value` alongside what it already has. Idempotent:
   * deploying twice leaves one entry.
   */
  deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void>;
  /** Probes that the deployed value is really accepted. @throws VERIFY_FAILED. */
  verify(version: VersionRef, value: SecretValue, call: Call): Promise<void>;
  /**
   * Stops accepting the version. Gets no value: match by `fingerprint` (recompute it over what the
   * target holds with ProviderContext.fingerprint) or by versionId. Idempotent; absent is success.
   */
  retire(version: VersionRef, call: Call): Promise<void>;
  /** What the target accepts now, for this secret. */
  listDeployed(call: Call): Promise<DeployedEntry[]>;
}
