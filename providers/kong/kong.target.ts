/**
 * Kong as a target: each version is one key-auth credential on a consumer, created with
 * `PUT /consumers/{consumer}/key-auth/{versionId}` (an upsert by id, so a retry after a lost
 * answer creates no second credential) and tagged with rekey's secret, version id and
 * fingerprint, so retire() and inspect() find it without the value. The consumer is
 * created when absent. Retire deletes by credential id, found by the fingerprint tag.
 */
import { ProviderError } from '../../src/core/errors.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Inspection, Target, UsageReading, VersionRef } from '../../src/core/ports.js';
import { sharedRead } from '../../src/core/kit/serial.js';
import { probeKey, type ProbeConfig } from '../../src/core/kit/probe.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { KongAdmin } from './admin-api.js';
import type { KongUsage } from './kong.usage.js';

export interface KongTargetOptions {
  provider: string;
  admin: KongAdmin;
  secret: string;
  /** Binding override of the consumer; else VersionRef.consumer. */
  consumer: string | undefined;
  createConsumers: boolean;
  probe: ProbeConfig | undefined;
  fingerprint: Fingerprinter;
  log: Logger;
  /** The usage source (Prometheus metrics per consumer), shared by every binding of the provider. */
  usage: KongUsage;
}

/** A key-auth credential as the Admin API returns it. */
interface KeyAuth {
  id: string;
  key?: string;
  consumer?: { id: string };
  tags?: string[] | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TAG = { any: 'rekey', secret: 'rekey-secret:', version: 'rekey-version:', fingerprint: 'rekey-fp:' } as const;

export class KongTarget implements Target {
  readonly #o: KongTargetOptions;
  /** Kong tags may not hold `/` or `,`; secret names may hold `/`, never `~`. */
  readonly #secretTag: string;

  constructor(options: KongTargetOptions) {
    this.#o = options;
    this.#secretTag = `${TAG.secret}${options.secret.replaceAll('/', '~')}`;
  }

  /** Upserts the credential (id = versionId) on the consumer, creating the consumer if absent. */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    const consumer = this.#consumer(version);
    if (!UUID.test(version.versionId)) throw this.#o.admin.error('REKEY_ERR_INVALID', `version id of ${version.secret} is not a UUID; Kong needs one as credential id`);
    const path = `/consumers/${encodeURIComponent(consumer)}/key-auth/${version.versionId}`;
    const body = () => ({ key: value.reveal(), tags: this.#tags(version) });
    let answer = await this.#o.admin.request('PUT', path, call.signal, body());
    if (answer.status === 404 && this.#o.createConsumers) {
      await this.#createConsumer(consumer, call);
      answer = await this.#o.admin.request('PUT', path, call.signal, body());
    }
    if (answer.status === 404) {
      throw this.#o.admin.error('REKEY_ERR_NOT_FOUND', `Kong has no consumer ${consumer} for ${version.secret} (createConsumers is off)`);
    }
    if (answer.status === 409) {
      throw this.#o.admin.error('REKEY_ERR_INVALID', `another key-auth credential already holds the value of version ${version.number} of ${version.secret}`);
    }
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, consumer }, 'kong: key deployed');
  }

  /** Probes through Kong's proxy when `probe` is set; else reads the credential back and compares. */
  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    if (this.#o.probe) return probeKey(this.#o.probe, value, call, this.#o.provider);
    const consumer = this.#consumer(version);
    const answer = await this.#o.admin.request('GET', `/consumers/${encodeURIComponent(consumer)}/key-auth/${version.versionId}`, call.signal);
    const key = answer.status === 200 ? (answer.body as KeyAuth).key : undefined;
    if (!key || !SecretValue.of(key).equals(value)) {
      throw new ProviderError('REKEY_ERR_VERIFY_FAILED', `consumer ${consumer} holds no credential with version ${version.number} of ${version.secret}`, {
        provider: this.#o.provider,
      });
    }
  }

  /** Deletes every credential tagged with the version's fingerprint (else its id). Absent is success. */
  async retire(version: VersionRef, call: Call): Promise<void> {
    const ids = version.fingerprint
      ? (await this.#o.admin.list<KeyAuth>('/key-auths', { tags: `${TAG.fingerprint}${version.fingerprint}` }, call.signal)).map((c) => c.id)
      : UUID.test(version.versionId)
        ? [version.versionId]
        : [];
    for (const id of ids) {
      // 404: deleted meanwhile (a retry, a concurrent retire): that is the goal.
      await this.#o.admin.request('DELETE', `/key-auths/${encodeURIComponent(id)}`, call.signal);
    }
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, deleted: ids.length }, 'kong: key retired');
  }

  /**
   * Every credential tagged with this secret: fingerprint of the key Kong holds (the tag when Kong
   * hides keys), version id. One listing of rekey's credentials serves every binding at once.
   */
  async inspect(call: Call): Promise<Inspection> {
    const all = await sharedRead(this.#o.admin, () => this.#o.admin.list<KeyAuth>('/key-auths', { tags: TAG.any }, call.signal));
    const entries = all
      .filter((credential) => credential.tags?.includes(this.#secretTag))
      .map((credential) => {
        const tags = credential.tags ?? [];
        return {
          versionId: tags.find((t) => t.startsWith(TAG.version))?.slice(TAG.version.length),
          // What Kong really holds when it shows keys; the tag when it does not (hashed keys).
          fingerprint: credential.key ? this.#o.fingerprint(credential.key) : tags.find((t) => t.startsWith(TAG.fingerprint))?.slice(TAG.fingerprint.length),
        };
      });
    return { entries, holds: 'all' };
  }

  /** Per-consumer request counts from Kong's Prometheus metrics (README.md "Usage"); one read for every binding. */
  readUsage(_windowMs: number, call: Call): Promise<UsageReading> {
    return sharedRead(this.#o.usage, () => this.#o.usage.read(call));
  }

  #consumer(version: VersionRef): string {
    return this.#o.consumer ?? version.consumer;
  }

  #tags(version: VersionRef): string[] {
    return [TAG.any, this.#secretTag, `${TAG.version}${version.versionId}`, `${TAG.fingerprint}${version.fingerprint}`];
  }

  async #createConsumer(username: string, call: Call): Promise<void> {
    const answer = await this.#o.admin.request('POST', '/consumers', call.signal, { username, tags: [TAG.any] });
    // 409: created meanwhile by a concurrent deploy (or by hand).
    if (answer.status !== 201 && answer.status !== 200 && answer.status !== 409) {
      throw this.#o.admin.error('REKEY_ERR_UNAVAILABLE', `Kong Admin API POST /consumers answered ${answer.status}`);
    }
    this.#o.log.info({ consumer: username }, 'kong: consumer created');
  }
}
