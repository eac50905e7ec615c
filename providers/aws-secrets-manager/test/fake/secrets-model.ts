/**
 * In-memory model of AWS Secrets Manager's secrets, versions and staging labels, for the fake
 * server next to it. Semantics follow the API reference:
 *
 * - PutSecretValue  https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html
 *   ClientRequestToken becomes the VersionId. Same token and same data: "the operation succeeds but
 *   does nothing". Same token, different data: fails, "you can't modify an existing version; you can
 *   only create new ones" (AWS answers ResourceExistsException). Without VersionStages AWSCURRENT
 *   moves to the new version; the first version of a secret always gets AWSCURRENT; a label named in
 *   VersionStages is removed from whichever version had it.
 * - UpdateSecretVersionStage  https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_UpdateSecretVersionStage.html
 *   A label is on one version at most; moving a label that is on another version requires
 *   RemoveFromVersionId naming that version. "Whenever you move AWSCURRENT, Secrets Manager
 *   automatically moves the label AWSPREVIOUS to the version that AWSCURRENT was removed from."
 *   AWSCURRENT cannot be removed, only moved (AWS: "You can only move staging label AWSCURRENT to a
 *   different secret version. It can't be completely removed.", as quoted by terraform-provider-aws).
 *   Removing a label that is not on RemoveFromVersionId is refused: the fake's strict reading.
 * - Versions without labels are "deprecated": DescribeSecret's VersionIdsToStages and
 *   ListSecretVersionIds (unless IncludeDeprecated) leave them out; GetSecretValue by VersionId still
 *   returns them until AWS deletes them (the fake never does).
 *   https://docs.aws.amazon.com/secretsmanager/latest/userguide/whats-in-a-secret.html
 * - CreateSecret without SecretString creates a secret with no versions.
 *   https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html
 * - GetSecretValue defaults to AWSCURRENT; DescribeSecret; ListSecretVersionIds (MaxResults, NextToken).
 * - TagResource  https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_TagResource.html
 *   appends tags (a key already present takes the new value); at most 50 per secret; keys 1-128 and
 *   values 0-256 characters (API_Tag.html); the `aws:` prefix is reserved. UntagResource removes keys.
 *   DescribeSecret returns Tags, and RotationEnabled / RotationLambdaARN / RotationRules when a test
 *   sets `rotation` on a secret (the fake implements no RotateSecret).
 */
import { randomBytes, randomUUID } from 'node:crypto';

export const AWSCURRENT = 'AWSCURRENT';
export const AWSPREVIOUS = 'AWSPREVIOUS';

/** An error the service answers with: `{"__type": type, "message": ...}` and an HTTP status. */
export class AwsApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface FakeVersion {
  id: string;
  value: string;
  stages: Set<string>;
  created: number;
}

export interface FakeSecret {
  name: string;
  arn: string;
  kmsKeyId: string | undefined;
  created: number;
  versions: Map<string, FakeVersion>;
  tags: Map<string, string>;
  /** AWS's own rotation, as RotateSecret would have configured it (set by tests). */
  rotation?: { lambdaArn?: string; scheduleExpression: string };
}

type Input = Record<string, unknown>;

const str = (input: Input, key: string): string | undefined => (typeof input[key] === 'string' ? input[key] : undefined);
const epoch = (ms: number) => ms / 1000;

export class SecretsModel {
  readonly secrets = new Map<string, FakeSecret>();

  constructor(
    readonly region = 'us-east-1',
    readonly account = '123456789012',
  ) {}

  /** Finds a secret by name or full ARN. @throws ResourceNotFoundException */
  resolve(secretId: unknown): FakeSecret {
    if (typeof secretId !== 'string' || !secretId) throw new AwsApiError('InvalidParameterException', 'SecretId is required');
    const secret = this.secrets.get(secretId) ?? [...this.secrets.values()].find((s) => s.arn === secretId);
    if (!secret) throw new AwsApiError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    return secret;
  }

  CreateSecret(input: Input): Input {
    const name = str(input, 'Name');
    if (!name || !/^[A-Za-z0-9/_+=.@-]{1,512}$/.test(name)) throw new AwsApiError('ValidationException', 'Invalid name');
    if (this.secrets.has(name)) {
      throw new AwsApiError('ResourceExistsException', `The operation failed because the secret ${name} already exists.`);
    }
    const suffix = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x').slice(0, 6);
    const secret: FakeSecret = {
      name,
      arn: `arn:aws:secretsmanager:${this.region}:${this.account}:secret:${name}-${suffix}`,
      kmsKeyId: str(input, 'KmsKeyId'),
      created: Date.now(),
      versions: new Map(),
      tags: new Map(),
    };
    if (Array.isArray(input.Tags)) this.TagResource({ SecretId: name, Tags: input.Tags });
    this.secrets.set(name, secret);
    const value = str(input, 'SecretString');
    if (value === undefined) return { ARN: secret.arn, Name: name };
    const id = str(input, 'ClientRequestToken') ?? randomUUID();
    this.#addVersion(secret, id, value, [AWSCURRENT]);
    return { ARN: secret.arn, Name: name, VersionId: id };
  }

  PutSecretValue(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const value = str(input, 'SecretString');
    if (value === undefined) throw new AwsApiError('InvalidRequestException', 'You must provide either SecretString or SecretBinary.');
    const token = str(input, 'ClientRequestToken') ?? randomUUID();
    if (token.length < 32 || token.length > 64) {
      throw new AwsApiError('ValidationException', "Value at 'clientRequestToken' failed to satisfy constraint: length 32-64");
    }
    const existing = secret.versions.get(token);
    if (existing) {
      if (existing.value !== value) {
        throw new AwsApiError('ResourceExistsException', "You can't modify an existing version, you can only create new versions.");
      }
      return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...existing.stages] };
    }
    const stages = Array.isArray(input.VersionStages) ? input.VersionStages.map(String) : [AWSCURRENT];
    const first = secret.versions.size === 0;
    const version = this.#addVersion(secret, token, value, stages);
    if (first && !version.stages.has(AWSCURRENT)) this.#attach(secret, AWSCURRENT, token);
    return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...version.stages] };
  }

  GetSecretValue(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const versionId = str(input, 'VersionId');
    const stage = str(input, 'VersionStage');
    let version: FakeVersion | undefined;
    if (versionId !== undefined) {
      version = secret.versions.get(versionId);
      if (!version || (stage !== undefined && !version.stages.has(stage))) {
        throw new AwsApiError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for VersionId: ${versionId}`);
      }
    } else {
      const label = stage ?? AWSCURRENT;
      version = this.#holder(secret, label);
      if (!version) {
        throw new AwsApiError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for staging label: ${label}`);
      }
    }
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.id,
      SecretString: version.value,
      VersionStages: [...version.stages],
      CreatedDate: epoch(version.created),
    };
  }

  DescribeSecret(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const stages: Record<string, string[]> = {};
    for (const v of secret.versions.values()) if (v.stages.size) stages[v.id] = [...v.stages];
    return {
      ARN: secret.arn,
      Name: secret.name,
      ...(secret.kmsKeyId ? { KmsKeyId: secret.kmsKeyId } : {}),
      CreatedDate: epoch(secret.created),
      VersionIdsToStages: stages,
      ...(secret.tags.size ? { Tags: [...secret.tags].map(([Key, Value]) => ({ Key, Value })) } : {}),
      RotationEnabled: secret.rotation !== undefined,
      ...(secret.rotation
        ? {
            ...(secret.rotation.lambdaArn ? { RotationLambdaARN: secret.rotation.lambdaArn } : {}),
            RotationRules: { ScheduleExpression: secret.rotation.scheduleExpression },
          }
        : {}),
    };
  }

  TagResource(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const tags = Array.isArray(input.Tags) ? (input.Tags as Array<{ Key?: unknown; Value?: unknown }>) : [];
    if (!tags.length) throw new AwsApiError('InvalidParameterException', 'Tags must not be empty');
    const next = new Map(secret.tags);
    for (const { Key, Value } of tags) {
      if (typeof Key !== 'string' || Key.length < 1 || Key.length > 128) throw new AwsApiError('ValidationException', 'Tag keys are 1-128 characters');
      if (typeof Value !== 'string' || Value.length > 256) throw new AwsApiError('ValidationException', 'Tag values are 0-256 characters');
      if (Key.toLowerCase().startsWith('aws:')) throw new AwsApiError('InvalidParameterException', 'The aws: prefix is reserved for AWS use');
      next.set(Key, Value);
    }
    if (next.size > 50) throw new AwsApiError('InvalidParameterException', 'A secret can have at most 50 tags');
    secret.tags = next;
    return {};
  }

  UntagResource(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const keys = Array.isArray(input.TagKeys) ? input.TagKeys.map(String) : [];
    for (const key of keys) secret.tags.delete(key);
    return {};
  }

  ListSecretVersionIds(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const max = typeof input.MaxResults === 'number' ? input.MaxResults : 100;
    if (max < 1 || max > 100) throw new AwsApiError('InvalidParameterException', 'MaxResults must be 1-100');
    const token = str(input, 'NextToken');
    const start = token === undefined ? 0 : Number(Buffer.from(token, 'base64url').toString());
    if (!Number.isInteger(start)) throw new AwsApiError('InvalidNextTokenException', 'The NextToken value is invalid.');
    const all = [...secret.versions.values()].filter((v) => v.stages.size > 0 || input.IncludeDeprecated === true);
    const page = all.slice(start, start + max);
    return {
      ARN: secret.arn,
      Name: secret.name,
      Versions: page.map((v) => ({ VersionId: v.id, VersionStages: [...v.stages], CreatedDate: epoch(v.created) })),
      ...(start + max < all.length ? { NextToken: Buffer.from(String(start + max)).toString('base64url') } : {}),
    };
  }

  UpdateSecretVersionStage(input: Input): Input {
    const secret = this.resolve(input.SecretId);
    const label = str(input, 'VersionStage');
    if (!label) throw new AwsApiError('InvalidParameterException', 'VersionStage is required');
    const moveTo = str(input, 'MoveToVersionId');
    const removeFrom = str(input, 'RemoveFromVersionId');
    for (const id of [moveTo, removeFrom]) {
      if (id !== undefined && !secret.versions.has(id)) throw new AwsApiError('InvalidParameterException', `Not a valid version: ${id}`);
    }
    const holder = this.#holder(secret, label);
    if (moveTo !== undefined) {
      if (holder && holder.id !== moveTo && removeFrom !== holder.id) {
        throw new AwsApiError(
          'InvalidParameterException',
          `The parameter RemoveFromVersionId can't be empty. Staging label ${label} is currently attached to version ${holder.id}, ` +
            'so you must explicitly reference that version in RemoveFromVersionId.',
        );
      }
      this.#attach(secret, label, moveTo);
    } else if (removeFrom !== undefined) {
      if (label === AWSCURRENT) {
        throw new AwsApiError(
          'InvalidParameterException',
          "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.",
        );
      }
      if (holder?.id !== removeFrom) {
        throw new AwsApiError('InvalidParameterException', `Staging label ${label} is not attached to version ${removeFrom}`);
      }
      holder.stages.delete(label);
    } else {
      throw new AwsApiError('InvalidParameterException', 'You must specify MoveToVersionId or RemoveFromVersionId.');
    }
    return { ARN: secret.arn, Name: secret.name };
  }

  #addVersion(secret: FakeSecret, id: string, value: string, stages: string[]): FakeVersion {
    const version: FakeVersion = { id, value, stages: new Set(), created: Date.now() };
    secret.versions.set(id, version);
    for (const label of stages) this.#attach(secret, label, id);
    return version;
  }

  #holder(secret: FakeSecret, label: string): FakeVersion | undefined {
    return [...secret.versions.values()].find((v) => v.stages.has(label));
  }

  /** Attaches a label to a version, taking it off its previous holder; moving AWSCURRENT drags AWSPREVIOUS along. */
  #attach(secret: FakeSecret, label: string, versionId: string): void {
    const target = secret.versions.get(versionId)!;
    const holder = this.#holder(secret, label);
    if (holder === target) return;
    holder?.stages.delete(label);
    target.stages.add(label);
    if (label === AWSCURRENT && holder) {
      this.#holder(secret, AWSPREVIOUS)?.stages.delete(AWSPREVIOUS);
      holder.stages.add(AWSPREVIOUS);
    }
  }
}
