/**
 * IAM's part of mapping SDK errors (src/core/kit/aws-errors.ts reads the rest): the actions and the
 * two-keys-per-user limit.
 */
import { awsProviderError, type AwsSpecialCase } from '../../src/core/kit/aws-errors.js';
import type { ProviderError } from '../../src/core/errors.js';

/** The IAM actions this issuer calls, each also its IAM permission's name. */
export type IamAction = 'ListAccessKeys' | 'CreateAccessKey' | 'UpdateAccessKey' | 'DeleteAccessKey' | 'ListUserTags' | 'TagUser';

const SPECIAL: Record<string, AwsSpecialCase> = {
  // Two keys per user: another writer created one between our list and create. A retry lists again.
  LimitExceededException: { code: 'REKEY_ERR_CONFLICT', hint: 'the user has two access keys already; a retry lists them again' },
};

export interface IamErrorContext {
  provider: string;
  secret: string;
  versionId: string;
  action: IamAction;
  userName: string;
  signal?: AbortSignal;
}

/** Wraps an SDK error in a ProviderError naming the version, the user and, when denied, the action to grant. */
export function iamError(error: unknown, context: IamErrorContext): ProviderError {
  return awsProviderError(error, {
    provider: context.provider,
    call: `secret ${context.secret} version ${context.versionId}: IAM ${context.action} for user ${context.userName}`,
    grant: `iam:${context.action} on user/${context.userName} (see providers/aws-iam-access-key/README.md)`,
    signal: context.signal,
    special: SPECIAL,
  });
}
