/**
 * SecretStore on Google Secret Manager. Versions are numbered and immutable; rekey's stages are
 * version aliases on the secret (`pending`, `current`, `previous`), moved with UpdateSecret under
 * the secret's etag, so a concurrent change fails with CONFLICT instead of being overwritten.
 * Consumers read `versions/current`, never `versions/latest` (latest is simply the newest
 * version, including a pending one that is not verified yet).
 *
 * AddSecretVersion has no idempotency key, so writePending makes one out of the secret's
 * annotations (state for client tools, per the API):
 *   1. GetSecret (CreateSecret when absent).
 *   2. UpdateSecret: annotation `rekey-pending-version` = rekey's versionId (the intent).
 *   3. AddSecretVersion.
 *   4. UpdateSecret: alias `pending` -> the new number, annotation `rekey-version-<n>` = versionId.
 * A retry that finds its own intent recovers instead of adding blindly: if `pending` already
 * points at a version annotated with this versionId and holding this value, that is the answer;
 * otherwise an enabled, unaliased version newer than every aliased one is what a lost step 3
 * response leaves behind, and it is adopted if it holds this value (compared in constant time).
 */
import type { SecretManagerServiceClient, protos } from '@google-cloud/secret-manager';
import { humanDuration } from '../../src/core/duration.js';
import { ProviderError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, ExpectedCurrent, RotationPolicy, SecretStore, Stage, StoredRef, StoredVersion, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { crc32c } from './crc32c.js';
import { gcpError, rpcCode, Status, type GcpMethod } from './gcp-errors.js';
import { referencesSecret, secretResourceName, versionNumberOf } from './gcp-names.js';
import { deriveRotation } from './gcp-rotation.js';

type ISecret = protos.google.cloud.secretmanager.v1.ISecret;

/** Annotation naming the rekey version a writePending is (or was) adding. */
export const INTENT_ANNOTATION = 'rekey-pending-version';
/** Annotation mapping an aliased version number to rekey's versionId. */
export const versionAnnotation = (n: number) => `rekey-version-${n}`;
/**
 * Annotation marking a rotation schedule as rekey's (`<cron>|<timezone>|<period seconds>`): only a
 * schedule carrying it is rekey's to replace or clear; one set by someone else is left alone.
 */
export const ROTATION_ANNOTATION = 'rekey-rotation';
const STAGES: readonly Stage[] = ['current', 'previous', 'pending'];
/** Orphans examined when recovering from a lost AddSecretVersion response. */
const MAX_ORPHANS = 3;
/** Read-modify-write rounds of the aliases under concurrent changes (etag mismatches) before CONFLICT. */
const MERGE_ATTEMPTS = 3;

export interface GcpStoreOptions {
  client: SecretManagerServiceClient;
  provider: string;
  project: string;
  /** The project's number, which notifications may name instead of its id. */
  projectNumber?: string | undefined;
  secretId: string;
  /** A Pub/Sub topic describeRotation adds to the secret's topics. */
  topic?: string | undefined;
  destroy: 'disable' | 'destroy';
  timeoutMs: number;
  locations: string[] | undefined;
  log: Logger;
}

/** What rekey needs of a Secret: its etag, aliases and annotations. */
interface SecretState {
  etag: string;
  aliases: Record<string, number>;
  annotations: Record<string, string>;
  /** Pub/Sub topic names. */
  topics: string[];
  /** rotation.next_rotation_time, when a schedule is set. */
  nextRotation: Date | undefined;
}

export class GcpSecretManagerStore implements SecretStore {
  readonly #o: GcpStoreOptions;
  readonly #name: string;

  constructor(options: GcpStoreOptions) {
    this.#o = options;
    this.#name = secretResourceName(options.project, options.secretId);
  }

  /** A SECRET_ROTATE notification's `secretId` attribute names this secret (by project id or number). */
  references(resourceName: string): boolean {
    return referencesSecret(resourceName, this.#o, this.#o.secretId);
  }

  async writePending(version: VersionRef, value: SecretValue, call: Call): Promise<{ storeVersionId: string }> {
    let secret = await this.#getOrCreate(call);
    let superseded: number | undefined;
    if (secret.annotations[INTENT_ANNOTATION] === version.versionId) {
      const recovered = await this.#recover(secret, version, value, call);
      if (recovered.storeVersionId) return { storeVersionId: recovered.storeVersionId };
      superseded = recovered.superseded;
    } else {
      secret = await this.#modify(secret, (s) => ({ aliases: s.aliases, annotations: { ...s.annotations, [INTENT_ANNOTATION]: version.versionId } }), call);
    }
    const data = Buffer.from(value.reveal(), 'utf8');
    const [added] = await this.#rpc('AddSecretVersion', call, (options) =>
      this.#o.client.addSecretVersion({ parent: this.#name, payload: { data, dataCrc32c: crc32c(data) } }, options),
    );
    const n = versionNumberOf(added.name);
    if (n === undefined) throw this.#invalid(`AddSecretVersion returned no version number`);
    // Adding a version leaves the secret's etag alone (versions and secrets have separate etags).
    await this.#setPending(secret, n, version.versionId, call);
    if (superseded !== undefined) await this.#retire(superseded, call);
    return { storeVersionId: String(n) };
  }

  async read(selector: { storeVersionId: string } | { stage: Stage }, call: Call): Promise<SecretValue> {
    let version: string;
    if ('storeVersionId' in selector) {
      // Only numbers: anything else would be taken for an alias (or `latest`) by the API.
      if (!/^[1-9]\d{0,18}$/.test(selector.storeVersionId)) throw this.#notFound(`version ${selector.storeVersionId}`);
      version = selector.storeVersionId;
    } else {
      version = selector.stage;
    }
    const value = await this.#access(version, call);
    if (!value) throw this.#notFound('storeVersionId' in selector ? `version ${version}` : `version aliased ${version}`);
    return value;
  }

  async promote(next: StoredRef, previous: StoredRef | undefined, expected: ExpectedCurrent, call: Call): Promise<void> {
    const n = this.#number(next.storeVersionId);
    if (n === undefined) throw this.#notFound(`version ${next.storeVersionId}`);
    const p = previous ? this.#number(previous.storeVersionId) : undefined;
    const e = expected ? this.#number(expected.storeVersionId) : undefined;
    await this.#modify(
      await this.#get(call),
      (secret) => {
        // Compare-and-set: checked on the state the update is made from, and the update carries that
        // state's etag, so a move of `current` since the read fails the update and is checked again here.
        const holder = secret.aliases.current;
        if (holder !== undefined && holder !== n && holder !== e) {
          throw new ProviderError('REKEY_ERR_CONFLICT', `${this.#name}: alias current is on version ${holder}, not the one rekey expected; nothing was changed`, {
            provider: this.#o.provider,
            retryable: false,
          });
        }
        // Every version rekey wrote holds an alias and its `rekey-version-<n>` annotation until destroy() drops
        // both (first, in one update under the etag): one with neither is destroyed, or being destroyed (a
        // rolled-back version), and is never made current. One that kept its annotation lost its aliases by
        // hand (`current` moved onto another version in the console): the store check gives current back to it.
        const ours = Object.values(secret.aliases).includes(n) || secret.annotations[versionAnnotation(n)] === next.versionId;
        if (!ours) throw this.#notFound(`version ${n} (it holds no alias and no rekey annotation: destroyed, or not rekey's)`);
        if (secret.aliases.current === n && secret.aliases.pending !== n && (p === undefined || secret.aliases.previous === p)) return undefined;
        const aliases: Record<string, number> = { ...secret.aliases, current: n };
        const old = secret.aliases.current;
        // The version core names as previous (a rollback names the one still in its grace, not the
        // rolled-back holder); without one, AWS's AWSPREVIOUS rule: previous is whatever was current.
        if (p !== undefined && p !== n) aliases.previous = p;
        else if (old !== undefined && old !== n) aliases.previous = old;
        if (aliases.pending === n) delete aliases.pending;
        const annotations: Record<string, string> = { ...secret.annotations, [versionAnnotation(n)]: next.versionId };
        if (previous && p !== undefined && p !== n) annotations[versionAnnotation(p)] = previous.versionId;
        if (annotations[INTENT_ANNOTATION] === next.versionId) delete annotations[INTENT_ANNOTATION];
        return { aliases, annotations };
      },
      call,
    );
  }

  async destroy(version: StoredRef, call: Call, options?: { undoPromotion?: boolean }): Promise<void> {
    const n = this.#number(version.storeVersionId);
    if (n === undefined) return;
    let secret: SecretState;
    try {
      secret = await this.#get(call);
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'REKEY_ERR_NOT_FOUND') return;
      throw error;
    }
    // Drop its aliases first, so reading `pending`/`previous` is NOT_FOUND rather than "disabled".
    await this.#modify(
      secret,
      (s) => {
        if (s.aliases.current === n && !options?.undoPromotion) throw this.#invalid(`refusing to destroy version ${n}: it is aliased current`);
        if (!Object.values(s.aliases).includes(n)) return undefined;
        const aliases = Object.fromEntries(Object.entries(s.aliases).filter(([, v]) => v !== n));
        // Undoing its promotion: current goes back to the version the promotion made previous, if any.
        if (s.aliases.current === n && aliases.previous !== undefined) {
          aliases.current = aliases.previous;
          delete aliases.previous;
        }
        const annotations = { ...s.annotations };
        if (annotations[INTENT_ANNOTATION] !== undefined && annotations[INTENT_ANNOTATION] === annotations[versionAnnotation(n)]) {
          delete annotations[INTENT_ANNOTATION];
        }
        return { aliases, annotations };
      },
      call,
    );
    await this.#retire(n, call);
  }

  async list(call: Call): Promise<StoredVersion[]> {
    let secret: SecretState;
    try {
      secret = await this.#get(call);
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'REKEY_ERR_NOT_FOUND') return [];
      throw error;
    }
    const versions = await this.#versions(call);
    return versions
      .filter((v) => v.state === 'ENABLED')
      .map(({ number }) => ({
        storeVersionId: String(number),
        versionId: secret.annotations[versionAnnotation(number)],
        stages: STAGES.filter((stage) => secret.aliases[stage] === number),
      }));
  }

  /**
   * Mirrors rekey's schedule into the secret's `rotation` (next time and period, see gcp-rotation.ts)
   * and adds the binding's `topic`, under the etag. Without a schedule, clears a rotation that
   * carries rekey's annotation and leaves anyone else's alone. Creates the secret if absent. On an
   * etag mismatch (an apply and a worker's retry of the same pending write, say) it re-reads the
   * secret and decides again, up to MERGE_ATTEMPTS times: the other writer may have done it already.
   */
  async describeRotation(policy: RotationPolicy, call: Call): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#describeRotationOnce(policy, call);
      } catch (error) {
        if (rpcCode(error) !== Status.FAILED_PRECONDITION || attempt >= MERGE_ATTEMPTS || call.signal.aborted) throw error;
        this.#o.log.debug({ attempt }, 'the secret changed under a rotation update (etag); re-reading it');
      }
    }
  }

  async #describeRotationOnce(policy: RotationPolicy, call: Call): Promise<string> {
    const secret = await this.#getOrCreate(call);
    const ours = secret.annotations[ROTATION_ANNOTATION];
    if (!policy.schedule) {
      if (ours === undefined) {
        return secret.nextRotation
          ? `Secret Manager rotation set outside rekey kept (next ${secret.nextRotation.toISOString()}); its SECRET_ROTATE messages trigger rekey`
          : 'no rotation schedule';
      }
      const { [ROTATION_ANNOTATION]: _dropped, ...annotations } = secret.annotations;
      await this.#updateRotation(secret, { annotations, rotation: {} }, call);
      return 'rekey rotation schedule cleared in Secret Manager';
    }
    const topics = this.#o.topic && !secret.topics.includes(this.#o.topic) ? [...secret.topics, this.#o.topic] : secret.topics;
    if (!topics.length) {
      return 'rotation schedule not shown: Secret Manager keeps one only on a secret with a Pub/Sub topic (set `topic:` in the store binding)';
    }
    const { cron, timezone } = policy.schedule;
    const derived = deriveRotation(cron, timezone);
    const marker = `${cron}|${timezone}|${derived.periodSeconds}`;
    const approx = derived.exact ? '' : ` (approximate: the schedule's intervals range from ${humanDuration(derived.range[0] * 1000)} to ${humanDuration(derived.range[1] * 1000)})`;
    const summary = (next: Date) => `Secret Manager rotation every ${humanDuration(derived.periodSeconds * 1000)}${approx}, next ${next.toISOString()}, topics ${topics.join(', ')}`;
    // Unchanged since the last apply: Google has been advancing next_rotation_time itself.
    if (ours === marker && topics === secret.topics && secret.nextRotation && secret.nextRotation > new Date()) return summary(secret.nextRotation);
    const seconds = (d: Date) => ({ seconds: Math.floor(d.getTime() / 1000), nanos: 0 });
    await this.#updateRotation(
      secret,
      {
        annotations: { ...secret.annotations, [ROTATION_ANNOTATION]: marker },
        rotation: { nextRotationTime: seconds(derived.next), rotationPeriod: { seconds: derived.periodSeconds, nanos: 0 } },
        ...(topics === secret.topics ? {} : { topics }),
      },
      call,
    );
    return summary(derived.next);
  }

  /** UpdateSecret of rotation, annotations and (when given) topics, under the etag. */
  async #updateRotation(
    secret: SecretState,
    change: { annotations: Record<string, string>; rotation: ISecret['rotation']; topics?: string[] },
    call: Call,
  ): Promise<void> {
    const paths = ['rotation', 'annotations', ...(change.topics ? ['topics'] : [])];
    await this.#rpc('UpdateSecret', call, (options) =>
      this.#o.client.updateSecret(
        {
          secret: {
            name: this.#name,
            rotation: change.rotation,
            annotations: change.annotations,
            ...(change.topics ? { topics: change.topics.map((name) => ({ name })) } : {}),
            etag: secret.etag,
          },
          updateMask: { paths },
        },
        options,
      ),
    );
  }

  /** Step 4 of writePending: alias `pending` and record whose version it is. */
  async #setPending(secret: SecretState, n: number, versionId: string, call: Call): Promise<void> {
    await this.#modify(secret, (s) => ({ aliases: { ...s.aliases, pending: n }, annotations: { ...s.annotations, [versionAnnotation(n)]: versionId } }), call);
  }

  /** A retry of writePending that finds its own intent: find what the earlier attempt wrote. */
  async #recover(
    secret: SecretState,
    version: VersionRef,
    value: SecretValue,
    call: Call,
  ): Promise<{ storeVersionId?: string; superseded?: number }> {
    const pending = secret.aliases.pending;
    let superseded: number | undefined;
    if (pending !== undefined && secret.annotations[versionAnnotation(pending)] === version.versionId) {
      if ((await this.#access(String(pending), call))?.equals(value)) return { storeVersionId: String(pending) };
      // Core re-issued a fresh value for this version after a crash: replace ours, then disable it.
      superseded = pending;
    }
    const aliased = new Set(Object.values(secret.aliases));
    const newest = Math.max(0, ...aliased);
    const orphans = (await this.#versions(call))
      .filter((v) => v.state === 'ENABLED' && v.number > newest && !aliased.has(v.number))
      .sort((a, b) => b.number - a.number)
      .slice(0, MAX_ORPHANS);
    for (const orphan of orphans) {
      if ((await this.#access(String(orphan.number), call))?.equals(value)) {
        this.#o.log.info({ storeVersionId: orphan.number }, 'adopting the version a lost AddSecretVersion response left behind');
        await this.#setPending(secret, orphan.number, version.versionId, call);
        if (superseded !== undefined) await this.#retire(superseded, call);
        return { storeVersionId: String(orphan.number) };
      }
    }
    if (orphans.length) {
      this.#o.log.warn({ versions: orphans.map((o) => o.number) }, 'unaliased versions hold other values; leaving them as they are');
    }
    return superseded === undefined ? {} : { superseded };
  }

  /** Disables a version (and destroys it when configured). Idempotent. */
  async #retire(n: number, call: Call): Promise<void> {
    const name = `${this.#name}/versions/${n}`;
    const steps: Array<'DisableSecretVersion' | 'DestroySecretVersion'> =
      this.#o.destroy === 'destroy' ? ['DisableSecretVersion', 'DestroySecretVersion'] : ['DisableSecretVersion'];
    for (const method of steps) {
      try {
        await this.#rpc(method, call, (options) =>
          method === 'DisableSecretVersion'
            ? this.#o.client.disableSecretVersion({ name }, options)
            : this.#o.client.destroySecretVersion({ name }, options),
        );
      } catch (error) {
        if (rpcCode(error) === Status.NOT_FOUND) return;
        // Disabling or destroying a destroyed version is refused: already as gone as it gets.
        if (rpcCode(error) !== Status.FAILED_PRECONDITION) throw error;
        const [state] = await this.#rpc('GetSecretVersion', call, (options) => this.#o.client.getSecretVersion({ name }, options));
        if (state.state !== 'DESTROYED') throw error;
        return;
      }
    }
  }

  /** The value of a version (number or alias), or undefined when it is absent, disabled or destroyed. */
  async #access(version: string, call: Call): Promise<SecretValue | undefined> {
    try {
      const [response] = await this.#rpc('AccessSecretVersion', call, (options) =>
        this.#o.client.accessSecretVersion({ name: `${this.#name}/versions/${version}` }, options),
      );
      const data = response.payload?.data;
      if (!data || data.length === 0) return undefined;
      const bytes = typeof data === 'string' ? Buffer.from(data, 'base64') : Buffer.from(data);
      const expected = response.payload?.dataCrc32c;
      if (expected !== undefined && expected !== null && Number(expected) !== crc32c(bytes)) {
        throw new ProviderError('REKEY_ERR_UNAVAILABLE', `${this.#name} version ${version}: payload checksum mismatch`, {
          provider: this.#o.provider,
        });
      }
      return SecretValue.of(bytes.toString('utf8'));
    } catch (error) {
      const code = rpcCode(error);
      if (code === Status.NOT_FOUND || code === Status.FAILED_PRECONDITION) return undefined;
      throw error;
    }
  }

  async #getOrCreate(call: Call): Promise<SecretState> {
    try {
      return await this.#get(call);
    } catch (error) {
      if (rpcCode(error) !== Status.NOT_FOUND) throw error;
    }
    this.#o.log.info({ name: this.#name }, 'creating Google secret');
    const replication = this.#o.locations
      ? { userManaged: { replicas: this.#o.locations.map((location) => ({ location })) } }
      : { automatic: {} };
    try {
      const [created] = await this.#rpc('CreateSecret', call, (options) =>
        this.#o.client.createSecret(
          { parent: `projects/${this.#o.project}`, secretId: this.#o.secretId, secret: { replication, labels: { 'managed-by': 'rekey' } } },
          options,
        ),
      );
      return stateOf(created);
    } catch (error) {
      // Created concurrently, or by our own earlier attempt whose response was lost.
      if (rpcCode(error) !== Status.ALREADY_EXISTS) throw error;
      return this.#get(call);
    }
  }

  async #get(call: Call): Promise<SecretState> {
    const [secret] = await this.#rpc('GetSecret', call, (options) => this.#o.client.getSecret({ name: this.#name }, options));
    return stateOf(secret);
  }

  /**
   * Read-modify-write of the secret's aliases and annotations: `change` computes them from the
   * secret's state (undefined: nothing to do). On an etag mismatch it re-reads the secret and
   * recomputes, up to MERGE_ATTEMPTS times, then throws CONFLICT. A version's retirement and the next
   * rotation can update the same secret at the same moment; failing the step instead would make
   * core re-issue the credential and could leave an unaliased version behind.
   */
  async #modify(
    secret: SecretState,
    change: (secret: SecretState) => { aliases: Record<string, number>; annotations: Record<string, string> } | undefined,
    call: Call,
  ): Promise<SecretState> {
    for (let attempt = 1; ; attempt++) {
      const next = change(secret);
      if (!next) return secret;
      try {
        return await this.#update(secret, next.aliases, next.annotations, call);
      } catch (error) {
        if (rpcCode(error) !== Status.FAILED_PRECONDITION || attempt >= MERGE_ATTEMPTS || call.signal.aborted) throw error;
        this.#o.log.debug({ attempt }, 'the secret changed under an update (etag); re-reading it');
        secret = await this.#get(call);
      }
    }
  }

  /** Replaces the secret's aliases and annotations under its etag. @throws CONFLICT on an etag mismatch. */
  async #update(secret: SecretState, aliases: Record<string, number>, annotations: Record<string, string>, call: Call): Promise<SecretState> {
    // Keep rekey's own annotations bounded: only versions that still hold an alias keep their mapping.
    const live = new Set(Object.values(aliases).map((n) => versionAnnotation(n)));
    const kept = Object.fromEntries(Object.entries(annotations).filter(([key]) => !key.startsWith('rekey-version-') || live.has(key)));
    const [updated] = await this.#rpc('UpdateSecret', call, (options) =>
      this.#o.client.updateSecret(
        {
          secret: { name: this.#name, versionAliases: aliases, annotations: kept, etag: secret.etag },
          updateMask: { paths: ['version_aliases', 'annotations'] },
        },
        options,
      ),
    );
    return stateOf(updated);
  }

  /** Every version, newest first: a page of 100 per call, each call one attempt (as {@link #rpc}), not the client's own paging. */
  async #versions(call: Call): Promise<Array<{ number: number; state: string }>> {
    const all: Array<{ number: number; state: string }> = [];
    let pageToken: string | undefined;
    do {
      const [versions, , page] = await this.#rpc('ListSecretVersions', call, (options) =>
        this.#o.client.listSecretVersions({ parent: this.#name, pageSize: 100, pageToken }, { ...options, autoPaginate: false }),
      );
      for (const v of versions) {
        const number = versionNumberOf(v.name);
        if (number !== undefined) all.push({ number, state: String(v.state ?? '') });
      }
      pageToken = page?.nextPageToken || undefined;
    } while (pageToken);
    return all;
  }

  /**
   * One API call, one attempt, with the client library's own retries off (its defaults retry
   * `AccessSecretVersion` for up to 10 minutes, which would hide a quota error): a transient
   * failure surfaces as a retryable ProviderError and the engine retries the step (see "Retries
   * and timeouts" in providers/README.md).
   */
  async #rpc<T>(method: GcpMethod, call: Call, run: (options: { timeout: number; retry: null }) => Promise<T>): Promise<T> {
    // The client enforces `timeout` as a gRPC deadline only; the REST transport ignores it.
    const signal = AbortSignal.any([call.signal, AbortSignal.timeout(this.#o.timeoutMs)]);
    try {
      if (signal.aborted) throw abortError(signal);
      return await untilAborted(run({ timeout: this.#o.timeoutMs, retry: null }), signal);
    } catch (error) {
      throw gcpError(error, { provider: this.#o.provider, secret: this.#name, method, signal });
    }
  }

  #number(storeVersionId: string): number | undefined {
    return /^[1-9]\d{0,18}$/.test(storeVersionId) ? Number(storeVersionId) : undefined;
  }

  #notFound(what: string): ProviderError {
    return new ProviderError('REKEY_ERR_NOT_FOUND', `${this.#name} has no readable ${what}`, { provider: this.#o.provider });
  }

  #invalid(message: string): ProviderError {
    return new ProviderError('REKEY_ERR_INVALID', `${this.#name}: ${message}`, { provider: this.#o.provider });
  }
}

function stateOf(secret: ISecret): SecretState {
  const aliases: Record<string, number> = {};
  for (const [alias, n] of Object.entries(secret.versionAliases ?? {})) aliases[alias] = Number(n);
  const next = secret.rotation?.nextRotationTime?.seconds;
  return {
    etag: secret.etag ?? '',
    aliases,
    annotations: { ...(secret.annotations ?? {}) },
    topics: (secret.topics ?? []).flatMap((t) => (t.name ? [t.name] : [])),
    nextRotation: next === undefined || next === null ? undefined : new Date(Number(next) * 1000),
  };
}

/** Settles with `promise`, or rejects as soon as `signal` aborts (gax calls take no AbortSignal). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  // When the signal wins, the call still settles later: keep that from being an unhandled rejection.
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e as Error)),
    );
  });
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
