/**
 * AWS API Gateway (REST APIs) as a target: each version is one API key, named
 * `<prefix>/<secret>/<versionId>`, its value the version's value, its customerId the consumer,
 * tagged with rekey's secret, version id and fingerprint, and added to a usage plan (API keys
 * only count once they are in a usage plan bound to the API's stages).
 * Retire first disables the key (effective at once), then removes it from the plan and deletes
 * it, so a failure halfway leaves a dead key rather than a live one.
 */
import {
  type APIGatewayClient,
  type ApiKey,
  CreateApiKeyCommand,
  CreateUsagePlanKeyCommand,
  DeleteApiKeyCommand,
  DeleteUsagePlanKeyCommand,
  GetApiKeyCommand,
  GetApiKeysCommand,
  GetUsagePlanKeyCommand,
  GetUsagePlanKeysCommand,
  UpdateApiKeyCommand,
} from '@aws-sdk/client-api-gateway';
import { awsErrorName } from '../../src/core/kit/aws-errors.js';
import { ProviderError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Inspection, Target, UsageReading, VersionRef } from '../../src/core/ports.js';
import { sharedRead } from '../../src/core/kit/serial.js';
import { probeKey, type ProbeConfig } from '../../src/core/kit/probe.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { apiGatewayError, type ApiGatewayOperation } from './aws-errors.js';
import type { ApiGatewayUsage } from './aws-api-gateway.usage.js';

export interface ApiGatewayTargetOptions {
  provider: string;
  client: APIGatewayClient;
  secret: string;
  usagePlanId: string;
  namePrefix: string;
  probe: ProbeConfig | undefined;
  log: Logger;
  /** The usage source (GetUsage of every plan of the provider), shared by every binding. */
  usage: ApiGatewayUsage;
}

export const TAG = { secret: 'rekey:secret', version: 'rekey:version-id', fingerprint: 'rekey:fingerprint' } as const;

export class ApiGatewayTarget implements Target {
  readonly #o: ApiGatewayTargetOptions;

  constructor(options: ApiGatewayTargetOptions) {
    this.#o = options;
  }

  /** CreateApiKey (unless a key of this version exists; then it is re-enabled if needed), then CreateUsagePlanKey. */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    let key = (await this.#byName(this.#name(version), call))[0];
    if (!key) {
      key = await this.#aws('CreateApiKey', `key for version ${version.number} of ${version.secret}`, call, () =>
        this.#o.client.send(
          new CreateApiKeyCommand({
            name: this.#name(version),
            description: `rekey: version ${version.number} of ${version.secret}`,
            enabled: true,
            value: value.reveal(),
            customerId: version.consumer,
            tags: { [TAG.secret]: this.#o.secret, [TAG.version]: version.versionId, [TAG.fingerprint]: version.fingerprint },
          }),
          { abortSignal: call.signal },
        ),
      );
    } else if (!key.enabled) {
      // A retire that stopped after disabling, then a deploy of the same version again.
      await this.#setEnabled(key.id!, true, call);
    }
    try {
      await this.#aws('CreateUsagePlanKey', `usage plan ${this.#o.usagePlanId}`, call, () =>
        this.#o.client.send(new CreateUsagePlanKeyCommand({ usagePlanId: this.#o.usagePlanId, keyId: key.id!, keyType: 'API_KEY' }), { abortSignal: call.signal }),
      );
    } catch (error) {
      // Already in the plan: a retry after a lost answer.
      if (awsErrorName(error) !== 'ConflictException') throw error;
    }
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, keyId: key.id, usagePlanId: this.#o.usagePlanId }, 'api-gateway: key deployed');
  }

  /** Probes the API with the key when `probe` is set; else reads the key back (value, enabled, in the plan). */
  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    if (this.#o.probe) return probeKey(this.#o.probe, value, call, this.#o.provider);
    const failed = (why: string) =>
      new ProviderError('REKEY_ERR_VERIFY_FAILED', `version ${version.number} of ${version.secret}: ${why}`, { provider: this.#o.provider });
    const id = (await this.#byName(this.#name(version), call))[0]?.id;
    if (!id) throw failed('no API key of this version');
    const key = await this.#aws('GetApiKey', `key ${id}`, call, () => this.#o.client.send(new GetApiKeyCommand({ apiKey: id, includeValue: true }), { abortSignal: call.signal }));
    if (!key.enabled || !key.value || !SecretValue.of(key.value).equals(value)) throw failed('the API key is disabled or holds another value');
    try {
      await this.#aws('GetUsagePlanKey', `usage plan ${this.#o.usagePlanId}`, call, () =>
        this.#o.client.send(new GetUsagePlanKeyCommand({ usagePlanId: this.#o.usagePlanId, keyId: id }), { abortSignal: call.signal }),
      );
    } catch (error) {
      if ((error as ProviderError).code === 'REKEY_ERR_NOT_FOUND') throw failed(`the API key is not in usage plan ${this.#o.usagePlanId}`);
      throw error;
    }
  }

  /**
   * Disables, removes from the usage plan, deletes: every key of the version, by name, else by its
   * tags (a key named under an earlier namePrefix, or when no version id is given).
   */
  async retire(version: VersionRef, call: Call): Promise<void> {
    const named = version.versionId ? await this.#byName(this.#name(version), call) : [];
    const keys =
      named.length > 0
        ? named
        : (await this.#all(call)).filter(
            (k) =>
              (version.versionId && k.tags?.[TAG.secret] === this.#o.secret && k.tags[TAG.version] === version.versionId) ||
              (version.fingerprint && k.tags?.[TAG.fingerprint] === version.fingerprint),
          );
    for (const key of keys) {
      const id = key.id!;
      // NotFound: a concurrent retire of the version deleted it since the listing.
      if (key.enabled) await this.#absentIsFine(() => this.#setEnabled(id, false, call));
      await this.#absentIsFine(() =>
        this.#aws('DeleteUsagePlanKey', `usage plan ${this.#o.usagePlanId}`, call, () =>
          this.#o.client.send(new DeleteUsagePlanKeyCommand({ usagePlanId: this.#o.usagePlanId, keyId: id }), { abortSignal: call.signal }),
        ),
      );
      await this.#absentIsFine(() =>
        this.#aws('DeleteApiKey', `key ${id}`, call, () => this.#o.client.send(new DeleteApiKeyCommand({ apiKey: id }), { abortSignal: call.signal })),
      );
    }
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, deleted: keys.length }, 'api-gateway: key retired');
  }

  /**
   * Every enabled key tagged with this secret that is in the binding's usage plan (a key out of
   * the plan is refused by the stage): one listing of the account's keys shared by every binding,
   * and one of each plan's keys shared by the bindings of that plan.
   */
  async inspect(call: Call): Promise<Inspection> {
    const plan = this.#o.usagePlanId;
    const [keys, inPlan] = await Promise.all([
      sharedRead(this.#o.client, () => this.#all(call)),
      sharedRead(`aws-api-gateway:${this.#o.provider}:plan:${plan}`, () => this.#planKeyIds(call)),
    ]);
    const entries = keys
      .filter((k) => k.enabled && k.tags?.[TAG.secret] === this.#o.secret && inPlan.has(k.id!))
      .map((k) => ({ versionId: k.tags?.[TAG.version], fingerprint: k.tags?.[TAG.fingerprint], consumer: k.customerId }));
    return { entries, holds: 'all' };
  }

  /** Requests per key and day from GetUsage (README.md "Usage": coarse); one read for every binding. */
  readUsage(_windowMs: number, call: Call): Promise<UsageReading> {
    const source = { client: this.#o.client, listKeys: (c: Call) => this.#all(c), aws: <T>(what: string, c: Call, run: () => Promise<T>) => this.#aws('GetUsage', what, c, run) };
    return sharedRead(this.#o.usage, () => this.#o.usage.read(source, call));
  }

  #name(version: VersionRef): string {
    // The binding's secret, not version.secret: the name must not depend on who asks.
    return `${this.#o.namePrefix}/${this.#o.secret}/${version.versionId}`;
  }

  /** Keys with exactly this name. nameQuery narrows the listing; the exact comparison does not rely on how. */
  async #byName(name: string, call: Call): Promise<ApiKey[]> {
    return (await this.#list(call, name)).filter((k) => k.name === name);
  }

  /** Every API key of the account and region, 500 per page (tags are returned, values are not). */
  async #all(call: Call): Promise<ApiKey[]> {
    return this.#list(call, undefined);
  }

  async #list(call: Call, nameQuery: string | undefined): Promise<ApiKey[]> {
    const keys: ApiKey[] = [];
    let position: string | undefined;
    do {
      const page = await this.#aws('GetApiKeys', 'list API keys', call, () =>
        this.#o.client.send(new GetApiKeysCommand({ nameQuery, includeValues: false, limit: 500, position }), { abortSignal: call.signal }),
      );
      keys.push(...(page.items ?? []));
      position = page.position;
    } while (position);
    return keys;
  }

  /** The ids of the binding's usage plan's keys, every page (values are dropped at once). */
  async #planKeyIds(call: Call): Promise<Set<string>> {
    const ids = new Set<string>();
    let position: string | undefined;
    do {
      const page = await this.#aws('GetUsagePlanKeys', `usage plan ${this.#o.usagePlanId}`, call, () =>
        this.#o.client.send(new GetUsagePlanKeysCommand({ usagePlanId: this.#o.usagePlanId, limit: 500, position }), { abortSignal: call.signal }),
      );
      for (const key of page.items ?? []) if (key.id) ids.add(key.id);
      position = page.position;
    } while (position);
    return ids;
  }

  async #setEnabled(id: string, enabled: boolean, call: Call): Promise<void> {
    await this.#aws('UpdateApiKey', `key ${id}`, call, () =>
      this.#o.client.send(new UpdateApiKeyCommand({ apiKey: id, patchOperations: [{ op: 'replace', path: '/enabled', value: String(enabled) }] }), {
        abortSignal: call.signal,
      }),
    );
  }

  async #absentIsFine(run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error) {
      if ((error as ProviderError).code !== 'REKEY_ERR_NOT_FOUND') throw error;
    }
  }

  async #aws<T>(operation: ApiGatewayOperation, what: string, call: Call, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw apiGatewayError(error, { provider: this.#o.provider, operation, what, signal: call.signal });
    }
  }
}
