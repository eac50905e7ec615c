/**
 * One key of a Kubernetes Secret as a (workload) target. A Secret holds one value per key, so
 * workloads use exactly one version at a time; the overlap during a rotation is provided by the
 * issuer accepting both the old and the new credential until the old one's grace ends.
 *
 * - deploy writes the value into `key` (workloads start using it) and moves the value it replaces
 *   into `previousKey`, then restarts the named Deployments so their pods read it.
 * - retire of a version removes it only from the slot that still holds it. Retiring the value in
 *   `key` (a rollback, or a leak of the new value) gives `key` the value kept in `previousKey`
 *   back (and restarts again), or removes `key` when there is none.
 * Every write carries the resourceVersion it was computed from, so a concurrent change makes it
 * fail with a retryable CONFLICT instead of overwriting a newer value.
 */
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { ProviderError } from '../../src/core/errors.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Inspection, Target, VersionRef } from '../../src/core/ports.js';
import { sharedRead } from '../../src/core/kit/serial.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { KubeApi } from './kube-api.js';

export interface KubernetesSecretTargetOptions {
  provider: string;
  api: KubeApi;
  namespace: string;
  name: string;
  key: string;
  /** undefined: single slot. */
  previousKey: string | undefined;
  restart: readonly string[];
  waitForRollout: boolean;
  create: boolean;
  fingerprint: Fingerprinter;
  log: Logger;
}

/** Pod template annotation: when rekey last restarted the Deployment. */
export const RESTARTED_AT = 'rekey.dev/restartedAt';

/**
 * Pod template annotation: for which value of the Secret's `key` rekey last restarted the
 * Deployment. One per Secret and key (a hash of them: an annotation name is at most 63
 * characters), so secrets that restart the same Deployment do not overwrite each other's.
 */
export function restartedFor(secret: string, key: string): string {
  return `rekey.dev/fingerprint.${createHash('sha256').update(`${secret}/${key}`).digest('hex').slice(0, 16)}`;
}

export class KubernetesSecretTarget implements Target {
  readonly #o: KubernetesSecretTargetOptions;
  readonly #restartedFor: string;

  constructor(options: KubernetesSecretTargetOptions) {
    this.#o = options;
    this.#restartedFor = restartedFor(options.name, options.key);
  }

  /** Writes `key` (keeping the replaced value in `previousKey`), then restarts the Deployments. Idempotent. */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    const { api, namespace, name, key, previousKey } = this.#o;
    const secret = await api.readSecret(namespace, name, call.signal);
    if (!secret) {
      if (!this.#o.create) throw this.#error('REKEY_ERR_NOT_FOUND', `Secret ${namespace}/${name} does not exist (create it, or set create: true)`);
      await api.createSecret(namespace, { metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'rekey' } }, type: 'Opaque', data: { [key]: encode(value.reveal()) } }, call.signal);
    } else {
      const current = read(secret, key);
      if (!current?.equals(value)) {
        const data: Record<string, string | null> = { [key]: encode(value.reveal()) };
        // The value being replaced stays one step behind, for a rollback; nothing stale survives.
        if (previousKey) data[previousKey] = current ? encode(current.reveal()) : null;
        await api.patchSecret(namespace, name, { metadata: { resourceVersion: secret.metadata?.resourceVersion }, data }, call.signal);
      }
    }
    await this.#restart(version.fingerprint, call);
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, target: `${namespace}/${name}:${key}` }, 'kubernetes-secret: value deployed');
  }

  /**
   * The value is in the Secret (in `key`, or in `previousKey` during the overlap), and, when
   * Deployments are restarted, their rollout to the value now in `key` has finished.
   */
  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    const secret = await this.#o.api.readSecret(this.#o.namespace, this.#o.name, call.signal);
    const held = secret ? [read(secret, this.#o.key), this.#o.previousKey ? read(secret, this.#o.previousKey) : undefined] : [];
    if (!held.some((v) => v?.equals(value))) {
      throw this.#error('REKEY_ERR_VERIFY_FAILED', `Secret ${this.#o.namespace}/${this.#o.name} does not hold version ${version.number} of ${version.secret}`);
    }
    if (!this.#o.waitForRollout) return;
    const current = read(secret!, this.#o.key);
    for (const deployment of this.#o.restart) {
      const d = await this.#o.api.readDeployment(this.#o.namespace, deployment, call.signal);
      const wanted = d.spec?.replicas ?? 1;
      const status = d.status ?? {};
      // As `kubectl rollout status`: available pods count old ones too, so also wait until no
      // pod of an older ReplicaSet (still using the value it started with) is left.
      const done =
        d.spec?.template?.metadata?.annotations?.[this.#restartedFor] === (current ? this.#o.fingerprint(current) : undefined) &&
        (status.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
        (status.updatedReplicas ?? 0) >= wanted &&
        (status.replicas ?? 0) <= (status.updatedReplicas ?? 0) &&
        (status.availableReplicas ?? 0) >= wanted;
      if (!done) throw this.#error('REKEY_ERR_VERIFY_FAILED', `Deployment ${this.#o.namespace}/${deployment} has not finished rolling out the new value yet`);
    }
  }

  /** Removes the version from whichever slot holds it; from `key`, the previous value comes back. Absent is success. */
  async retire(version: VersionRef, call: Call): Promise<void> {
    const { api, namespace, name, key, previousKey } = this.#o;
    const secret = await api.readSecret(namespace, name, call.signal);
    if (!secret) return;
    const current = read(secret, key);
    const previous = previousKey ? read(secret, previousKey) : undefined;
    const isIt = (v: SecretValue | undefined) => v !== undefined && this.#o.fingerprint(v) === version.fingerprint;
    const data: Record<string, string | null> = {};
    let restored: SecretValue | undefined;
    if (isIt(previous)) data[previousKey!] = null;
    if (isIt(current)) {
      restored = previous && !isIt(previous) ? previous : undefined;
      data[key] = restored ? encode(restored.reveal()) : null;
      if (previousKey && previous) data[previousKey] = null;
    }
    if (Object.keys(data).length === 0) {
      // A retry of a retire that gave `key` its previous value back and stopped before the
      // restart: pods still started for the retired value must move to the one in `key`.
      if (current && this.#o.restart.length > 0) await this.#restart(this.#o.fingerprint(current), call, version.fingerprint);
      return;
    }
    await api.patchSecret(namespace, name, { metadata: { resourceVersion: secret.metadata?.resourceVersion }, data }, call.signal);
    // Pods must drop the retired value; with nothing to give back, restarting would only break them.
    if (restored) await this.#restart(this.#o.fingerprint(restored), call);
    this.#o.log.info(
      { versionId: version.versionId, fingerprint: version.fingerprint, target: `${namespace}/${name}:${key}`, restoredPrevious: Boolean(restored) },
      'kubernetes-secret: value retired',
    );
  }

  /**
   * The fingerprints of the values in `key` (in use) and in `previousKey` (the fallback): the
   * newest wanted version must be in `key`. Bindings of one Secret share one read of it.
   */
  async inspect(call: Call): Promise<Inspection> {
    const { api, namespace, name } = this.#o;
    const secret = await sharedRead(`kubernetes:${this.#o.provider}:${namespace}/${name}`, () => api.readSecret(namespace, name, call.signal));
    const values = secret ? [this.#o.key, this.#o.previousKey].map((k) => (k ? read(secret, k) : undefined)) : [];
    return { entries: values.flatMap((v) => (v ? [{ fingerprint: this.#o.fingerprint(v) }] : [])), holds: 'newest' };
  }

  /**
   * Sets the restart annotations on each Deployment whose pods were not yet restarted for
   * `fingerprint`; with `from`, only on those whose pods were last restarted for `from`.
   */
  async #restart(fingerprint: string, call: Call, from?: string): Promise<void> {
    for (const deployment of this.#o.restart) {
      const d = await this.#o.api.readDeployment(this.#o.namespace, deployment, call.signal);
      const restartedFor = d.spec?.template?.metadata?.annotations?.[this.#restartedFor];
      if (restartedFor === fingerprint) continue; // a retry: already restarted
      if (from !== undefined && restartedFor !== from) continue;
      // What `kubectl rollout restart` does, under rekey's own annotation names.
      const annotations = { [RESTARTED_AT]: new Date().toISOString(), [this.#restartedFor]: fingerprint };
      await this.#o.api.patchDeployment(this.#o.namespace, deployment, { spec: { template: { metadata: { annotations } } } }, call.signal);
      this.#o.log.info({ deployment: `${this.#o.namespace}/${deployment}`, fingerprint }, 'kubernetes-secret: deployment restarted');
    }
  }

  #error(code: ConstructorParameters<typeof ProviderError>[0], message: string): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider });
  }
}

function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** A data key's value, decoded; undefined when absent or empty. */
function read(secret: V1Secret, key: string): SecretValue | undefined {
  const encoded = secret.data?.[key];
  if (!encoded) return undefined;
  const text = Buffer.from(encoded, 'base64').toString('utf8');
  return text ? SecretValue.of(text) : undefined;
}
