/**
 * SecretStore on AWS Secrets Manager, using AWS's own staging labels the way its rotation
 * functions do (createSecret / setSecret / testSecret / finishSecret):
 *
 * - writePending = PutSecretValue with ClientRequestToken = rekey's versionId and VersionStages
 *   [AWSPENDING]. AWS makes the token the VersionId and ignores a repeat with the same data, so a
 *   retry after a lost response creates no second version. Attaching AWSPENDING moves it off any
 *   other version, which is how a stray AWSPENDING left by a crashed run is cleaned up.
 * - promote = UpdateSecretVersionStage moving AWSCURRENT (AWS then moves AWSPREVIOUS to the old
 *   current by itself), then removing AWSPENDING. The move names the version it takes AWSCURRENT from
 *   (RemoveFromVersionId), which AWS checks: promote is a compare-and-set on the version rekey expected.
 * - destroy = removing every staging label. A version without labels is "deprecated": AWS drops it
 *   from DescribeSecret and ListSecretVersionIds and deletes it eventually. rekey treats a version
 *   without labels as destroyed, so reading one by id is NOT_FOUND even while AWS still has it.
 *
 * One AWS rule bends rekey's model: the first version of a secret always gets AWSCURRENT. A version
 * holding both AWSCURRENT and AWSPENDING has not been promoted by rekey, so it is reported as
 * `pending` only, and reading stage `current` finds nothing until promote. AWS never lets that
 * version lose AWSCURRENT except by a move, so destroying it keeps both labels (and undoing its
 * promotion puts AWSPENDING back): it stays pending to rekey until the next write takes AWSPENDING.
 *
 * describeRotation tags the secret with rekey's schedule instead of setting AWS's RotationRules:
 * those need a rotation Lambda and make AWS the rotator, and rekey is the rotator.
 */
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateSecretVersionStageCommand,
  type DescribeSecretCommandOutput,
  type GetSecretValueCommandOutput,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { awsErrorName } from '../../src/core/kit/aws-errors.js';
import { formatDuration } from '../../src/core/duration.js';
import { ProviderError } from '../../src/core/errors.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, ExpectedCurrent, JsonObject, RotationPolicy, SecretStore, Stage, StoredRef, StoredVersion, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { secretsManagerError, type AwsOperation } from './aws-errors.js';
import { composeDocument, extractField, parseDocument, type FieldContext } from './json-field.js';

export const AWSCURRENT = 'AWSCURRENT';
export const AWSPREVIOUS = 'AWSPREVIOUS';
export const AWSPENDING = 'AWSPENDING';

/** Tags describeRotation owns (it adds, changes and removes these keys only). */
export const ROTATION_TAGS = { rotatedBy: 'rekey:rotated-by', schedule: 'rekey:schedule', grace: 'rekey:grace' } as const;
const REKEY_TAG = /^rekey:/;

const LABEL_OF: Record<Stage, string> = { current: AWSCURRENT, previous: AWSPREVIOUS, pending: AWSPENDING };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

export interface AwsStoreOptions {
  client: SecretsManagerClient;
  /** The provider instance's name, for errors. */
  provider: string;
  /** The AWS secret name or ARN. */
  name: string;
  field: string | undefined;
  kmsKeyId: string | undefined;
  fingerprint: Fingerprinter;
  log: Logger;
}

/** rekey's stages for a version's AWS staging labels (see the file comment for the AWSCURRENT+AWSPENDING rule). */
export function rekeyStages(labels: readonly string[]): Stage[] {
  const stages: Stage[] = [];
  if (labels.includes(AWSPENDING)) stages.push('pending');
  else if (labels.includes(AWSCURRENT)) stages.push('current');
  if (labels.includes(AWSPREVIOUS)) stages.push('previous');
  return stages;
}

/** rekey's versionId behind a VersionId this provider wrote (the token itself, or token-plus-suffix). */
export function versionIdOf(storeVersionId: string): string | undefined {
  const match = UUID.exec(storeVersionId);
  if (!match) return undefined;
  const rest = storeVersionId.slice(match[0].length);
  return rest === '' || /^-[0-9a-f]{16}$/.test(rest) ? match[0].toLowerCase() : undefined;
}

export class AwsSecretsManagerStore implements SecretStore {
  readonly #o: AwsStoreOptions;
  readonly #fieldContext: FieldContext | undefined;

  constructor(options: AwsStoreOptions) {
    this.#o = options;
    this.#fieldContext = options.field ? { provider: options.provider, secret: options.name, field: options.field } : undefined;
  }

  async writePending(version: VersionRef, value: SecretValue, call: Call): Promise<{ storeVersionId: string }> {
    const token = version.versionId;
    if (token.length < 32 || token.length > 47) {
      throw new ProviderError('REKEY_ERR_INVALID', `versionId of ${version.secret} v${version.number} is not a UUID`, {
        provider: this.#o.provider,
      });
    }
    const secretString = await this.#compose(value, call);
    try {
      await this.#put(token, secretString, call);
      return { storeVersionId: token };
    } catch (error) {
      const name = awsErrorName(error);
      if (name === 'ResourceNotFoundException') {
        await this.#create(call);
        await this.#put(token, secretString, call);
        return { storeVersionId: token };
      }
      if (name !== 'ResourceExistsException') throw error;
    }
    // AWS refuses a token reused with different data. That happens when core re-issued a fresh
    // credential for the same rekey version after a crash. Write it under a token derived from
    // the versionId and the new data's fingerprint: still idempotent per (version, value).
    const derived = `${token}-${Buffer.from(this.#o.fingerprint(secretString).slice(3), 'base64url').toString('hex').slice(0, 16)}`;
    this.#o.log.info({ storeVersionId: derived }, 'version token reused with a new value; writing it under a derived token');
    await this.#put(derived, secretString, call);
    return { storeVersionId: derived };
  }

  async read(selector: { storeVersionId: string } | { stage: Stage }, call: Call): Promise<SecretValue> {
    let out: GetSecretValueCommandOutput;
    let what: string;
    if ('storeVersionId' in selector) {
      what = `version ${selector.storeVersionId}`;
      // AWS VersionIds are 32-64 characters; anything else cannot exist (and AWS would call it invalid).
      if (selector.storeVersionId.length < 32 || selector.storeVersionId.length > 64) throw this.#notFound(what);
      out = await this.#get({ VersionId: selector.storeVersionId }, call, what);
      // No labels = deprecated = destroyed, as far as rekey is concerned.
      if (!out.VersionStages?.length) throw this.#notFound(`${what} (destroyed: it has no staging labels)`);
    } else {
      const label = LABEL_OF[selector.stage];
      what = `stage ${label}`;
      out = await this.#get({ VersionStage: label }, call, what);
      if (selector.stage === 'current' && out.VersionStages?.includes(AWSPENDING)) {
        throw this.#notFound(`${what} (the only version is still pending: nothing has been promoted yet)`);
      }
    }
    return this.#valueOf(out, what);
  }

  async promote(next: StoredRef, previous: StoredRef | undefined, expected: ExpectedCurrent, call: Call): Promise<void> {
    const stages = await this.#describe(call);
    const holder = [...stages].find(([, labels]) => labels.includes(AWSCURRENT))?.[0];
    // AWSCURRENT on a version still pending is AWS's own doing (a new secret's first version), not a promotion.
    const current = holder !== undefined && !stages.get(holder)!.includes(AWSPENDING) ? holder : undefined;
    if (current !== undefined && current !== next.storeVersionId && current !== expected?.storeVersionId) throw this.#stageMoved(current);
    // A version with no label is deprecated, which is destroyed as far as rekey is concerned (a rolled-back
    // one): never made current. AWS would move AWSCURRENT onto it, and checks nothing about it in the move,
    // so this read is all there is: a call that stalls between it and the move still lands (README).
    if (!stages.has(next.storeVersionId)) throw this.#notFound(`version ${next.storeVersionId} to promote (destroyed: it has no staging labels)`);
    if (holder !== next.storeVersionId) {
      // Moving AWSCURRENT makes AWS move AWSPREVIOUS to the version it leaves. It goes first: a crash
      // between the two calls leaves the new version current and still labelled pending, which a
      // retried promote finishes; the other order could leave it with no label at all.
      // RemoveFromVersionId is the compare-and-set: AWS refuses the move (InvalidParameterException)
      // when AWSCURRENT is no longer on that version, so a move made since the describe above is
      // never overwritten. The retry describes again and decides again.
      try {
        await this.#stage({ VersionStage: AWSCURRENT, MoveToVersionId: next.storeVersionId, RemoveFromVersionId: holder }, call);
      } catch (error) {
        // The same exception answers other invalid moves: only a label that moved is a conflict.
        if (awsErrorName(error) !== 'InvalidParameterException' || holder === undefined || (await this.#describe(call)).get(holder)?.includes(AWSCURRENT)) throw error;
        throw new ProviderError('REKEY_ERR_CONFLICT', `AWSCURRENT of AWS secret "${this.#o.name}" moved while rekey was promoting; nothing was changed`, {
          provider: this.#o.provider,
          cause: error,
        });
      }
    }
    // AWS gave AWSPREVIOUS to the version AWSCURRENT left. A rollback names another previous (the one
    // still in its grace, not the rolled-back holder): move it there, also when a retry finds
    // AWSCURRENT moved already.
    const previousHolder = holder !== undefined && holder !== next.storeVersionId ? holder : [...stages].find(([, labels]) => labels.includes(AWSPREVIOUS))?.[0];
    if (previous && previous.storeVersionId !== next.storeVersionId && previous.storeVersionId !== previousHolder) {
      await this.#stage({ VersionStage: AWSPREVIOUS, MoveToVersionId: previous.storeVersionId, RemoveFromVersionId: previousHolder }, call);
    }
    if ((stages.get(next.storeVersionId) ?? []).includes(AWSPENDING)) {
      await this.#stage({ VersionStage: AWSPENDING, RemoveFromVersionId: next.storeVersionId }, call);
    }
  }

  async destroy(version: StoredRef, call: Call, options?: { undoPromotion?: boolean }): Promise<void> {
    const id = version.storeVersionId;
    let stages: Map<string, string[]>;
    try {
      stages = await this.#describe(call);
    } catch (error) {
      if (awsErrorName(error) === 'ResourceNotFoundException') return;
      throw error;
    }
    let labels = stages.get(id) ?? [];
    // Promoted by rekey: AWSCURRENT without AWSPENDING (with both, the first version of a secret).
    const promoted = labels.includes(AWSCURRENT) && !labels.includes(AWSPENDING);
    if (promoted && !options?.undoPromotion) {
      throw new ProviderError('REKEY_ERR_INVALID', `refusing to destroy version ${id} of AWS secret "${this.#o.name}": it is AWSCURRENT`, {
        provider: this.#o.provider,
      });
    }
    if (labels.includes(AWSCURRENT) && options?.undoPromotion) {
      const others = [...stages].filter(([other]) => other !== id);
      const before = others.find(([, l]) => l.includes(AWSPREVIOUS))?.[0];
      if (before) {
        // Undoing its promotion (also one whose removal of AWSPENDING never happened): AWSCURRENT
        // goes back to the version it left (AWS then moves AWSPREVIOUS onto this one, removed below
        // with the rest).
        await this.#stage({ VersionStage: AWSCURRENT, MoveToVersionId: before, RemoveFromVersionId: id }, call);
        labels = [...labels.filter((l) => l !== AWSCURRENT && l !== AWSPREVIOUS), AWSPREVIOUS];
      } else if (promoted && !others.some(([, l]) => l.includes(AWSPENDING))) {
        // The secret's first version: AWS will not take AWSCURRENT off it (it can only be moved, and
        // there is nowhere to move it). Undo its promotion by putting it back as it was before:
        // AWSCURRENT with AWSPENDING, which rekey reads as pending, holding no current stage. The
        // rollback's usual destroy that follows (and any retry) then finds a pending version, as a
        // first rotation rolled back before its promotion leaves it.
        await this.#stage({ VersionStage: AWSPENDING, MoveToVersionId: id }, call);
        labels = [...labels, AWSPENDING];
      }
    }
    // AWSCURRENT cannot be removed, only moved ("You can only move staging label AWSCURRENT to a
    // different secret version. It can't be completely removed."; the fake refuses it too), so the
    // first version of a secret keeps it, and AWSPENDING with it: rekey's mark that it was never
    // promoted (see rekeyStages). Removing AWSPENDING would make it current in rekey's eyes, served by
    // read() and refused by the next destroy. The next promote moves AWSCURRENT away.
    const keep = labels.includes(AWSCURRENT) ? [AWSCURRENT, AWSPENDING] : [];
    if (keep.length) this.#o.log.warn({ storeVersionId: id }, 'AWS keeps AWSCURRENT on the first version of a new secret; it stays pending until the next promote');
    const removing = labels.filter((l) => !keep.includes(l));
    for (const label of removing) await this.#stage({ VersionStage: label, RemoveFromVersionId: id }, call);
    if (!removing.length || keep.length) return;
    // The labels were read, then removed one call at a time: a promotion of this version (a late one,
    // its driver stalled past its lease) may have moved AWSCURRENT onto it in between. Those removals
    // never take AWSCURRENT off a version (see above), so it is still there to see: refuse, as for a
    // version that was current from the start, and core gives current back and destroys again.
    // (A promotion whose DescribeSecret came before these removals and whose move comes after this
    // read is not caught here: AWS has no condition on a version's labels to make the move depend on.)
    if ((await this.#describe(call)).get(id)?.includes(AWSCURRENT)) {
      throw new ProviderError(
        'REKEY_ERR_INVALID',
        `refusing to destroy version ${id} of AWS secret "${this.#o.name}": a promotion made it AWSCURRENT while it was being destroyed`,
        { provider: this.#o.provider },
      );
    }
  }

  async list(call: Call): Promise<StoredVersion[]> {
    const versions: StoredVersion[] = [];
    let nextToken: string | undefined;
    do {
      let page;
      try {
        page = await this.#send('ListSecretVersionIds', call, (abortSignal) =>
          this.#o.client.send(new ListSecretVersionIdsCommand({ SecretId: this.#o.name, NextToken: nextToken, MaxResults: 100 }), {
            abortSignal,
          }),
        );
      } catch (error) {
        if (awsErrorName(error) === 'ResourceNotFoundException') return [];
        throw error;
      }
      for (const v of page.Versions ?? []) {
        if (!v.VersionId || !v.VersionStages?.length) continue;
        versions.push({ storeVersionId: v.VersionId, versionId: versionIdOf(v.VersionId), stages: rekeyStages(v.VersionStages) });
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return versions;
  }

  /**
   * Tags the secret with rekey's schedule (`rekey:rotated-by`, `rekey:schedule`, `rekey:grace`), or
   * removes those tags when the schedule is gone; tags rekey does not own are left alone. AWS's own
   * rotation (RotationRules) needs a Lambda that does the rotating, so it is never set; if someone
   * turned it on, two rotators would fight over AWSPENDING, and that is reported as INVALID.
   */
  async describeRotation(policy: RotationPolicy, call: Call): Promise<string> {
    let secret: DescribeSecretCommandOutput;
    try {
      secret = await this.#describeSecret(call);
    } catch (error) {
      if (awsErrorName(error) !== 'ResourceNotFoundException') throw error;
      await this.#create(call);
      secret = await this.#describeSecret(call);
    }
    if (secret.RotationEnabled) {
      throw new ProviderError(
        'REKEY_ERR_INVALID',
        `AWS secret "${this.#o.name}" has AWS rotation turned on (${secret.RotationLambdaARN ?? 'managed rotation'}): it and rekey would both ` +
          `rotate it and fight over AWSPENDING. Turn AWS rotation off (aws secretsmanager cancel-rotate-secret --secret-id ${this.#o.name}).`,
        { provider: this.#o.provider },
      );
    }
    const desired: Record<string, string> = policy.schedule
      ? {
          [ROTATION_TAGS.rotatedBy]: 'rekey',
          [ROTATION_TAGS.schedule]: `${policy.schedule.cron} ${policy.schedule.timezone}`,
          [ROTATION_TAGS.grace]: formatDuration(policy.graceMs),
        }
      : {};
    const current = new Map((secret.Tags ?? []).flatMap((t) => (t.Key && REKEY_TAG.test(t.Key) ? [[t.Key, t.Value ?? '']] : [])));
    const set = Object.entries(desired).filter(([key, value]) => current.get(key) !== value);
    const remove = [...current.keys()].filter((key) => Object.values(ROTATION_TAGS).includes(key as never) && !(key in desired));
    if (set.length) {
      await this.#send('TagResource', call, (abortSignal) =>
        this.#o.client.send(new TagResourceCommand({ SecretId: this.#o.name, Tags: set.map(([Key, Value]) => ({ Key, Value })) }), { abortSignal }),
      );
    }
    if (remove.length) {
      await this.#send('UntagResource', call, (abortSignal) =>
        this.#o.client.send(new UntagResourceCommand({ SecretId: this.#o.name, TagKeys: remove }), { abortSignal }),
      );
    }
    if (!policy.schedule) return remove.length ? 'rekey schedule tags removed' : 'no rotation schedule';
    return `tagged ${ROTATION_TAGS.schedule}="${desired[ROTATION_TAGS.schedule]}" (AWS rotation stays off: rekey rotates)`;
  }

  /** The SecretString to write: the value, or in field mode the current document with the field replaced. */
  async #compose(value: SecretValue, call: Call): Promise<string> {
    if (!this.#fieldContext) return value.reveal();
    let base: JsonObject | undefined;
    try {
      const current = await this.#get({ VersionStage: AWSCURRENT }, call, `stage ${AWSCURRENT}`);
      if (current.SecretString !== undefined) base = parseDocument(current.SecretString, this.#fieldContext, AWSCURRENT);
    } catch (error) {
      if (!(error instanceof ProviderError && error.code === 'REKEY_ERR_NOT_FOUND')) throw error;
    }
    return composeDocument(base, this.#fieldContext.field, value);
  }

  async #put(token: string, secretString: string, call: Call): Promise<void> {
    await this.#send('PutSecretValue', call, (abortSignal) =>
      this.#o.client.send(
        new PutSecretValueCommand({
          SecretId: this.#o.name,
          ClientRequestToken: token,
          SecretString: secretString,
          VersionStages: [AWSPENDING],
        }),
        { abortSignal },
      ),
    );
  }

  /** Creates the secret with no version (a value here would become AWSCURRENT at once). */
  async #create(call: Call): Promise<void> {
    this.#o.log.info({ name: this.#o.name }, 'creating AWS secret');
    try {
      await this.#send('CreateSecret', call, (abortSignal) =>
        this.#o.client.send(
          new CreateSecretCommand({ Name: this.#o.name, KmsKeyId: this.#o.kmsKeyId, Description: 'Managed by rekey' }),
          { abortSignal },
        ),
      );
    } catch (error) {
      // Created by a concurrent call or by our own earlier attempt whose response was lost.
      if (awsErrorName(error) !== 'ResourceExistsException') throw error;
    }
  }

  async #get(selector: { VersionId: string } | { VersionStage: string }, call: Call, what: string): Promise<GetSecretValueCommandOutput> {
    try {
      return await this.#send('GetSecretValue', call, (abortSignal) =>
        this.#o.client.send(new GetSecretValueCommand({ SecretId: this.#o.name, ...selector }), { abortSignal }),
      );
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'REKEY_ERR_NOT_FOUND') throw this.#notFound(what, error.cause);
      throw error;
    }
  }

  /** VersionId -> staging labels of every version that has one (DescribeSecret's VersionIdsToStages). */
  async #describe(call: Call): Promise<Map<string, string[]>> {
    const out = await this.#describeSecret(call);
    return new Map(Object.entries(out.VersionIdsToStages ?? {}));
  }

  #describeSecret(call: Call): Promise<DescribeSecretCommandOutput> {
    return this.#send('DescribeSecret', call, (abortSignal) =>
      this.#o.client.send(new DescribeSecretCommand({ SecretId: this.#o.name }), { abortSignal }),
    );
  }

  async #stage(
    input: { VersionStage: string; MoveToVersionId?: string; RemoveFromVersionId?: string | undefined },
    call: Call,
  ): Promise<void> {
    await this.#send('UpdateSecretVersionStage', call, (abortSignal) =>
      this.#o.client.send(new UpdateSecretVersionStageCommand({ SecretId: this.#o.name, ...input }), { abortSignal }),
    );
  }

  #valueOf(out: GetSecretValueCommandOutput, what: string): SecretValue {
    if (typeof out.SecretString !== 'string' || out.SecretString.length === 0) {
      throw new ProviderError('REKEY_ERR_INVALID', `AWS secret "${this.#o.name}" ${what} holds no SecretString (binary secrets are not supported)`, {
        provider: this.#o.provider,
      });
    }
    if (this.#fieldContext) return extractField(out.SecretString, this.#fieldContext, what);
    return SecretValue.of(out.SecretString);
  }

  /** promote's refusal: AWSCURRENT is on a version rekey did not expect (a later promotion, or a change outside rekey). */
  #stageMoved(holder: string): ProviderError {
    return new ProviderError('REKEY_ERR_CONFLICT', `AWSCURRENT of AWS secret "${this.#o.name}" is on version ${holder}, not the one rekey expected; nothing was changed`, {
      provider: this.#o.provider,
      retryable: false,
    });
  }

  #notFound(what: string, cause?: unknown): ProviderError {
    return new ProviderError('REKEY_ERR_NOT_FOUND', `AWS secret "${this.#o.name}" has no ${what}`, {
      provider: this.#o.provider,
      cause,
    });
  }

  async #send<T>(operation: AwsOperation, call: Call, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await run(call.signal);
    } catch (error) {
      throw secretsManagerError(error, { provider: this.#o.provider, secret: this.#o.name, operation, signal: call.signal });
    }
  }
}

