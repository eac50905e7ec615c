/**
 * Secrets Manager's part of mapping SDK errors (src/core/kit/aws-errors.ts reads the rest): the
 * operations, each also its IAM action's name, and the KMS failures that need a KMS grant.
 */
import { awsProviderError, type AwsSpecialCase } from '../../src/core/kit/aws-errors.js';
import type { ProviderError } from '../../src/core/errors.js';

/** The Secrets Manager operations this provider calls; each is also its IAM action's name. */
export type AwsOperation =
  | 'CreateSecret'
  | 'DescribeSecret'
  | 'GetSecretValue'
  | 'ListSecretVersionIds'
  | 'PutSecretValue'
  | 'TagResource'
  | 'UntagResource'
  | 'UpdateSecretVersionStage';

const kms = (actions: string) => ({
  code: 'REKEY_ERR_DENIED' as const,
  hint: `failed in KMS; rekey's role needs ${actions} on the secret's KMS key, and the key must be enabled`,
});

const SPECIAL: Record<string, AwsSpecialCase> = {
  DecryptionFailure: kms('kms:Decrypt'),
  EncryptionFailure: kms('kms:GenerateDataKey'),
  LimitExceededException: {
    code: 'REKEY_ERR_THROTTLED',
    hint: 'a Secrets Manager quota (e.g. versions created in the last 24 hours); rekey retries with backoff',
  },
};

export interface AwsErrorContext {
  provider: string;
  /** The AWS secret name or ARN. */
  secret: string;
  operation: AwsOperation;
  signal?: AbortSignal;
}

/** Wraps an SDK error in a ProviderError naming the secret and, when denied, the IAM action to grant. */
export function secretsManagerError(error: unknown, context: AwsErrorContext): ProviderError {
  return awsProviderError(error, {
    provider: context.provider,
    call: `${context.operation} on AWS secret "${context.secret}"`,
    grant: `secretsmanager:${context.operation} on it (see providers/aws-secrets-manager/README.md)`,
    signal: context.signal,
    special: SPECIAL,
  });
}
