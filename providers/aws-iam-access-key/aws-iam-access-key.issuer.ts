import {
  CreateAccessKeyCommand,
  DeleteAccessKeyCommand,
  ListAccessKeysCommand,
  ListUserTagsCommand,
  TagUserCommand,
  UpdateAccessKeyCommand,
  type AccessKeyMetadata,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { awsErrorName } from '../../src/core/kit/aws-errors.js';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, IssuedRef, Issuer, JsonObject, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { AwsIamAccessKeyIssuerBinding } from './aws-iam-access-key.schema.js';
import { iamError, type IamAction } from './aws-errors.js';

/**
 * The access key id recorded in a version's issuer state: what AWS's exposed-credential events
 * (AWS Health `AWS_RISK_CREDENTIALS_EXPOSED`) name, so the leaks feature can find the version.
 */
export function accessKeyIdFromState(state: JsonObject): string | undefined {
  const id = state.accessKeyId;
  return typeof id === 'string' && /^[A-Z0-9]{16,128}$/.test(id) ? id : undefined;
}

/**
 * The user tag naming the version being issued and the keys the user had before: a key
 * created by an attempt whose answer was lost (the worker died before rekey recorded it)
 * is one the next attempt at that version finds outside the list.
 */
export const ISSUE_JOURNAL_TAG = 'rekey-issuing';

/**
 * Rotates an IAM user's access key. AWS allows two keys per user, which is exactly the
 * overlap: the new key is created beside the live one, and revoke deactivates, then deletes,
 * the old one. The value is `{"accessKeyId","secretAccessKey"}`; the state names the key id.
 */
export class AwsIamAccessKeyIssuer implements Issuer {
  /** AWS Health names an exposed key by its access key id. */
  publicId(state: JsonObject): string | undefined {
    return accessKeyIdFromState(state);
  }

  constructor(
    private readonly provider: string,
    private readonly iam: IAMClient,
    private readonly params: AwsIamAccessKeyIssuerBinding,
    private readonly log: Logger,
  ) {}

  async issue(version: VersionRef, call: Call): Promise<{ value: SecretValue; state: JsonObject }> {
    const { userName } = this.params;
    const keys = await this.withoutOrphans(version, await this.list(version, call), call);
    if (keys.length >= 2) {
      // Make room by deleting the oldest key that is not live; never an Active one.
      const idle = keys.filter((k) => k.Status !== 'Active').sort((a, b) => time(a) - time(b));
      if (!idle[0]) {
        // LIMIT: after a leak, core ends the previous version's overlap to free a slot and tries again.
        throw this.error(
          'REKEY_ERR_LIMIT',
          version,
          `IAM user ${userName} already has two active access keys; deactivate the one not in use (or let its rotation finish) and retry`,
          false,
        );
      }
      const oldest = idle[0].AccessKeyId;
      // Key ids are public identifiers (never the secret half): worth a line in the log.
      this.log.info(
        { versionId: version.versionId, userName, accessKeyId: oldest },
        'deleting the oldest inactive access key to stay within two per user',
      );
      const remove = new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: oldest });
      await this.attempt(version, 'DeleteAccessKey', call, () => this.iam.send(remove, opts(call)), { absentOk: true });
      keys.splice(keys.indexOf(idle[0]), 1);
    }
    // Journal first: from here a lost answer leaves a key the next attempt can tell apart.
    const journal = [version.versionId, ...keys.map((k) => k.AccessKeyId)].join(' ');
    const tag = new TagUserCommand({ UserName: userName, Tags: [{ Key: ISSUE_JOURNAL_TAG, Value: journal }] });
    await this.attempt(version, 'TagUser', call, () => this.iam.send(tag, opts(call)));
    const create = new CreateAccessKeyCommand({ UserName: userName });
    const created = await this.attempt(version, 'CreateAccessKey', call, () => this.iam.send(create, opts(call)));
    const key = created?.AccessKey;
    if (!key?.AccessKeyId || !key.SecretAccessKey) throw this.error('REKEY_ERR_UNAVAILABLE', version, 'CreateAccessKey returned no key');
    return {
      value: SecretValue.of(JSON.stringify({ accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey })),
      state: { userName, accessKeyId: key.AccessKeyId },
    };
  }

  /**
   * Checks through IAM (ListAccessKeys, signed with rekey's own credentials) that the key exists on
   * the user and is Active, and that the value names it. It does not sign a request with the new
   * key: that would need STS; targets' verify is where the key is proven in use.
   */
  async verify(version: IssuedRef, value: SecretValue, call: Call): Promise<void> {
    const id = accessKeyIdFromState(version.issuerState);
    let named: unknown;
    try {
      named = (JSON.parse(value.reveal()) as { accessKeyId?: unknown }).accessKeyId;
    } catch {
      named = undefined;
    }
    if (!id || named !== id) throw this.error('REKEY_ERR_VERIFY_FAILED', version, 'the value does not name the issued access key', false);
    const key = (await this.list(version, call)).find((k) => k.AccessKeyId === id);
    if (key?.Status !== 'Active') {
      const status = key ? key.Status : 'absent';
      throw this.error('REKEY_ERR_VERIFY_FAILED', version, `access key ${id} is ${status} on IAM user ${this.params.userName}`);
    }
  }

  /**
   * Deactivates the key, then (onRevoke: delete) deletes it. A key already gone is success. With no
   * key id in the state (an issue whose answer was lost), deletes what the journal shows that
   * attempt created: left Active, it would hold the user's second slot and fail every later issue.
   */
  async revoke(version: IssuedRef, call: Call): Promise<void> {
    const id = accessKeyIdFromState(version.issuerState);
    if (!id) return this.revokeLost(version, call);
    const userName = typeof version.issuerState.userName === 'string' ? version.issuerState.userName : this.params.userName;
    // Inactive first: if the delete is denied or fails, the key is already dead for callers.
    const update = new UpdateAccessKeyCommand({ UserName: userName, AccessKeyId: id, Status: 'Inactive' });
    const found = await this.attempt(version, 'UpdateAccessKey', call, () => this.iam.send(update, opts(call)), { absentOk: true, userName });
    if (found && this.params.onRevoke === 'delete') {
      const remove = new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: id });
      await this.attempt(version, 'DeleteAccessKey', call, () => this.iam.send(remove, opts(call)), { absentOk: true, userName });
    }
  }

  /** Deletes the keys an attempt at `version` created and never returned; a user that is gone is success. */
  private async revokeLost(version: VersionRef, call: Call): Promise<void> {
    try {
      await this.withoutOrphans(version, await this.list(version, call), call);
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'REKEY_ERR_NOT_FOUND') return;
      throw error;
    }
  }

  /**
   * When the journal says an earlier attempt at this version ran, deletes the keys it made:
   * their secret half was lost with the answer, so nobody can hold them. Returns the rest.
   */
  private async withoutOrphans(version: VersionRef, keys: AccessKeyMetadata[], call: Call): Promise<AccessKeyMetadata[]> {
    const { userName } = this.params;
    const command = new ListUserTagsCommand({ UserName: userName });
    const tags = (await this.attempt(version, 'ListUserTags', call, () => this.iam.send(command, opts(call))))?.Tags ?? [];
    const [journalVersion, ...before] = (tags.find((t) => t.Key === ISSUE_JOURNAL_TAG)?.Value ?? '').split(' ');
    if (journalVersion !== version.versionId) return keys;
    const kept: AccessKeyMetadata[] = [];
    for (const key of keys) {
      if (before.includes(key.AccessKeyId ?? '')) {
        kept.push(key);
        continue;
      }
      this.log.warn(
        { versionId: version.versionId, userName, accessKeyId: key.AccessKeyId },
        'deleting an access key an earlier attempt at this version created but never recorded',
      );
      const remove = new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: key.AccessKeyId });
      await this.attempt(version, 'DeleteAccessKey', call, () => this.iam.send(remove, opts(call)), { absentOk: true });
    }
    return kept;
  }

  private async list(version: VersionRef, call: Call): Promise<AccessKeyMetadata[]> {
    const keys: AccessKeyMetadata[] = [];
    let marker: string | undefined;
    do {
      const command = new ListAccessKeysCommand({ UserName: this.params.userName, Marker: marker });
      const page = await this.attempt(version, 'ListAccessKeys', call, () => this.iam.send(command, opts(call)));
      keys.push(...(page?.AccessKeyMetadata ?? []));
      marker = page?.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return keys;
  }

  /**
   * Runs one IAM call on `userName` (the configured user unless the version recorded another);
   * with `absentOk`, NoSuchEntity resolves to undefined (idempotent deletes).
   */
  private async attempt<O>(
    version: VersionRef,
    action: IamAction,
    call: Call,
    send: () => Promise<O>,
    { absentOk = false, userName = this.params.userName }: { absentOk?: boolean; userName?: string } = {},
  ): Promise<O | undefined> {
    try {
      return await send();
    } catch (error) {
      if (absentOk && awsErrorName(error) === 'NoSuchEntityException') return undefined;
      throw iamError(error, { provider: this.provider, secret: version.secret, versionId: version.versionId, action, userName, signal: call.signal });
    }
  }

  private error(code: ErrorCode, version: VersionRef, why: string, retryable?: boolean): ProviderError {
    return new ProviderError(code, `secret ${version.secret} version ${version.versionId}: ${why}`, {
      provider: this.provider,
      ...(retryable === undefined ? {} : { retryable }),
    });
  }
}

const opts = (call: Call) => ({ abortSignal: call.signal });

function time(key: AccessKeyMetadata): number {
  return key.CreateDate ? new Date(key.CreateDate).getTime() : 0;
}
