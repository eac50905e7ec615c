/**
 * The provider roles: store, issuer, target (rotation) and authenticator (delivery). Core (src/core/rotation.ts and friends) orders every
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
  /**
   * Set when core sends again what it has sent before because it found the target wrong (a
   * drift repair): the same for every retry of that repair, different from the original step's
   * and from any later repair's. A provider that keys idempotency on the version alone (a webhook
   * id per version and event) adds it, so a receiver that deduplicates processes the repair
   * instead of dropping it as a repeat. Absent for the rotation protocol's own steps and retries.
   */
  generation?: string;
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

/**
 * The version rekey believes holds a store's current stage when it promotes (SecretStore.promote):
 * its store id, or null when no version holds it.
 */
export type ExpectedCurrent = { storeVersionId: string } | null;

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
   * stage. `previous` gets the previous stage even when another version held current (a rollback
   * names the version still in its grace, not the rolled-back one); when undefined, whichever
   * version held current becomes previous. Idempotent: promoting the version that is already
   * current succeeds.
   *
   * Conditional on `expected` (compare-and-set): it refuses, changing nothing, when the current stage
   * is held by a version that is neither `expected` nor `next` (with `expected` null: by any version
   * but `next`); a stage held by no version does not stop it. The condition is checked by the store
   * itself, atomically with the move (a stage move the store refuses, a write under an etag, one
   * transaction), never by a read in the adapter followed by an unguarded write: a call that arrives
   * late (its driver stalled past its lease, its request delayed on the wire) must not put an older
   * version back over the one a later rotation promoted. A version the store reports only as
   * `pending` (AWS: the first version of a secret, AWSCURRENT and AWSPENDING both) holds no current
   * stage. Core passes what it believes the store holds as current: in a rotation, the version that
   * is to become previous (or, on a secret's first rotation, what list() showed current under the
   * lease); in a rollback, the rolled-back version, whose promotion may have reached the store
   * (`next` is then the version current before it, `previous` the one still in its grace).
   *
   * Refuses, changing nothing, to promote a `next` that destroy() has taken (or is taking) out of the
   * store, checked the same way where the store can: a rollback destroys its version before it retires
   * and revokes it, so a late promotion of that version (its driver stalled past its lease, while a
   * successor rolls the same run back) cannot make the store serve a rolled-back, soon revoked key.
   * AWS cannot: UpdateSecretVersionStage moves a label onto a version with no labels (deprecated) and has
   * no condition on it, so its adapter checks the DescribeSecret it decides from; a request that stalled
   * between that read and the move still lands (providers/aws-secrets-manager/README.md).
   * @throws ProviderError REKEY_ERR_CONFLICT, not retryable, when another version holds the current
   * stage: nothing was changed, and a retry with the same expectation cannot succeed. REKEY_ERR_CONFLICT
   * retryable when the store's own concurrency check failed (an etag moved by an unrelated change).
   * REKEY_ERR_NOT_FOUND when the store does not hold `next` (destroyed, or never written).
   */
  promote(next: StoredRef, previous: StoredRef | undefined, expected: ExpectedCurrent, call: Call): Promise<void>;
  /**
   * Removes or disables the version so nobody can read it again. Idempotent; absent is success.
   * Refuses (REKEY_ERR_INVALID) to destroy the version that holds the current stage, except with
   * `undoPromotion`: the rollback of this version's promotion when rekey had no current version
   * before it (a first rotation). The current stage then goes back to the version that held the
   * previous stage, if any, or away; a store that cannot drop it (AWS, a secret's only version) keeps
   * the version as it was before its promotion, reported `pending`, holding no current stage, and a
   * destroy of it that follows succeeds.
   */
  destroy(version: StoredRef, call: Call, options?: { undoPromotion?: boolean }): Promise<void>;
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
  /**
   * Optional. Whether this store's secret is the one a cloud notification names (a Secret
   * Manager resource name such as `projects/p/secrets/s`). The event receivers use it to find
   * the managed secret an event is about without knowing any store's naming. Pure: no call.
   */
  references?(resourceName: string): boolean;
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
  /**
   * Kills the credential upstream. Idempotent; an unknown or already revoked credential is success.
   * Also called with an empty `issuerState` when a rollback takes back a version whose issue()
   * result was never recorded (it failed, timed out or its worker died): an issuer that marks what
   * it makes with the versionId (a role comment, a tag) kills it by that id; the others return.
   */
  revoke(version: IssuedRef, call: Call): Promise<void>;
  /**
   * Optional: public material relying parties fetch to check what the credential signs (a
   * public JWK, with `kid`), derived from the issuer state alone. `rekey server` publishes it
   * for pending, current and previous versions at /.well-known/jwks.json.
   */
  publicKey?(state: JsonObject): JsonObject | undefined;
  /**
   * Optional: signs a JWT with the version's private key, for the tokens `rekey server` mints
   * (POST /v1/token). The header carries the version's `kid` (its id, as publicKey publishes
   * it), its `alg` and `typ: JWT`; the payload is signed as given. Pure: no upstream call.
   * @throws ProviderError REKEY_ERR_INVALID when the value is not this issuer's private key.
   */
  signJwt?(version: IssuedRef, value: SecretValue, payload: JsonObject): Promise<string>;
  /**
   * Optional: the credential's public identifier as outside reports name it (an AWS access key
   * id in an AWS Health event), derived from the issuer state alone. rekey records it with the
   * version when it is issued, so a report naming it finds the version. Not a secret.
   */
  publicId?(state: JsonObject): string | undefined;
}

/** One key a target holds, as far as it can tell: matched to versions by fingerprint or versionId. */
export interface DeployedEntry {
  versionId?: string;
  fingerprint?: string;
  consumer?: string;
}

/** What a target holds now, read in one go (see Target.inspect). Ids and fingerprints, never a value. */
export interface Inspection {
  /**
   * Every key the target holds that it can name. Keys of other secrets sharing the same map or
   * listing may be included: the drift check matches entries to versions by fingerprint or
   * versionId and leaves keys it does not know alone.
   */
  entries: DeployedEntry[];
  /**
   * How many versions the target keeps in use at once.
   * - `all`: every deployed version is accepted alongside the others (a gateway's key set):
   *   each version the desired state wants must be held.
   * - `newest`: one value is in use, the one deployed last (a workload's Secret); only the
   *   newest wanted version must be held, and an older one may stay as a fallback.
   */
  holds: 'all' | 'newest';
}

/**
 * One key's counters as a usage source reads them (see Target.readUsage). Matched to a version by
 * fingerprint, never by value. Counters are cumulative since the gateway started tracking the key:
 * the collector takes differences between reads, and a counter that went down (the entry expired
 * or the gateway restarted) counts from zero again.
 */
export interface UsageCounter {
  fingerprint: string;
  /** Requests made with the key. */
  requests: number;
  /** Of those, the ones the upstream or the gateway answered with an error (4xx/5xx). */
  errors: number;
  /**
   * Distinct source networks seen with the key within the last `windowMs` of the read (the source
   * decides what a network is: an address, a /24); undefined when the source cannot tell.
   */
  sources: number | undefined;
}

/** One read of a usage source: every key it tracks, counted up to `at`. */
export interface UsageReading {
  /** When the counters were read (the collector's clock): the read's end. */
  at: Date;
  /**
   * When the read began, for a source whose counters are captured over the read (a long table
   * dump): the window is then taken from the previous read's start to this read's end, the
   * longest it can have been, so a slow read never makes a rate look higher than it was.
   */
  startedAt?: Date;
  counters: UsageCounter[];
  /**
   * Set by a source whose first read only sets where its counts start (a new instance: a worker's
   * start, a new config revision): uses made before it may be in no window, so the collector takes
   * it as a new start, not as the end of a window.
   */
  first?: boolean;
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
  /**
   * Optional. Reads what the target holds now, for the drift check (src/core/drift.ts), which
   * compares it with the desired state and repairs the difference. Read-only: never changes the
   * target, never returns a value.
   *
   * The drift check inspects every secret bound to a target at once, each interval. Bindings
   * that read the same resource (one map, one config, one listing) must share one read
   * (`sharedRead` in src/core/kit/serial.ts), so the target sees one read per interval however
   * many secrets it serves, never one per key.
   *
   * A target that cannot be read leaves it out: the drift check then probes it instead
   * (verify() of the current version), which finds a missing key but cannot see a retired one.
   * @throws ProviderError as any call (UNAVAILABLE when the target cannot be reached); the check
   * records the error in the sync status and tries again at the next interval.
   */
  inspect?(call: Call): Promise<Inspection>;
  /**
   * Optional, the usage source capability: the per-key counters the gateway keeps (an HAProxy stick
   * table, a Redis counter per key and window). The usage check (src/core/usage.ts) reads it on a
   * schedule per target (`usage.interval` on the providers: entry, default 10 s) and turns the
   * differences into rates, baselines, last use per version and rule decisions.
   *
   * Must be cheap and incremental: one read of the whole table per interval, shared by every
   * binding of the same table (`sharedRead`), never one call per key. Read-only, never returns a
   * value: keys are fingerprinted in the provider. Keys of other secrets may be included; the
   * check leaves fingerprints it does not know alone. `windowMs` is the collection interval: the
   * window `sources` counts over at least (a read that comes late, on a loaded worker, counts them
   * since the previous read where the source can, as its requests are).
   * @throws ProviderError as any call; the check logs it and reads again at the next interval.
   */
  readUsage?(windowMs: number, call: Call): Promise<UsageReading>;
  /**
   * Optional, with readUsage: moves one version's key into (`throttled: true`) or out of the
   * gateway's rate-limited class, which the gateway's own config enforces (HAProxy answers 429
   * over its limit for that key only). Matched by fingerprint like retire(). Idempotent; a key the
   * target does not hold is success. The drift check does not see the class: inspect() reports the
   * consumer without it.
   */
  throttle?(version: VersionRef, throttled: boolean, call: Call): Promise<void>;
}

/** Who presented a credential, as an authenticator established it. Public data only. */
export interface Subject {
  /**
   * The subject's stable identifier, matched by grants (`subjects:` globs) and written to the
   * audit log: a claim of the credential (`sub`, an app id, `system:serviceaccount:<ns>:<sa>`).
   */
  id: string;
  /** The credential's verified claims, which a grant may copy into the tokens it mints. Never the credential. */
  claims: JsonObject;
  /**
   * Ids of the managed versions the proof relied on (attestation-jwt: the version of the shared
   * secret that verified it; client-key: the client's key). rekey checks they are still live in
   * the transaction that records the hand-out, so a credential checked against a version revoked
   * meanwhile gets nothing. Empty for credentials verified against keys rekey does not manage.
   */
  versions?: readonly string[];
  /**
   * A last check that costs a remote call (the kubernetes-service-account authenticator's
   * TokenReview), left for rekey to run for a subject within its rate limit, before charging it:
   * a subject over its limit costs the remote side nothing, and a credential the remote side
   * refuses costs the subject nothing. The subject is authenticated only once it
   * resolved: every caller of {@link Authenticator.authenticate} runs it (core's delivery.ts does).
   * @throws ProviderError REKEY_ERR_DENIED or REKEY_ERR_UNAVAILABLE, as authenticate() does.
   */
  confirm?(call: Call): Promise<void>;
}

/**
 * Turns a credential a workload presents (an app attestation token, an OIDC ID token, a
 * Kubernetes service account token) into a {@link Subject}. One instance per entry under
 * `delivery.authenticators`. Called on every token request, before anything else of it is
 * acted on: it must not change state anywhere, and it never logs the credential.
 *
 * Errors are codes, never values: the message names the authenticator and a fixed reason
 * (`expired`, `audience`, `signature`, `algorithm`, `malformed`...), never the credential, a
 * claim or a key.
 */
export interface Authenticator {
  /**
   * Verifies `credential` (signature with a pinned algorithm, expiry, audience, issuer) and
   * returns its subject (with a remote check still to run, {@link Subject.confirm}). Idempotent and read-only.
   * @throws ProviderError REKEY_ERR_DENIED when the credential is not valid for any reason.
   * @throws ProviderError REKEY_ERR_UNAVAILABLE when what it verifies against (a JWKS, a secret's
   * versions) cannot be read now; the caller may retry.
   */
  authenticate(credential: SecretValue, call: Call): Promise<Subject>;
}
