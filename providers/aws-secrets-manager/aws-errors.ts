/**
 * Maps AWS SDK v3 errors to rekey's ProviderError codes. The SDK error rides along as `cause`
 * (core logs it through describeError, which strips request ids and `Credential=` fragments);
 * the message names the secret and, for permission problems, the IAM action to grant.
 */
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';

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

interface AwsErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded']);
const DENIED = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredTokenException',
  'ExpiredToken',
  'InvalidClientTokenId',
  'CredentialsProviderError',
]);
const INVALID = new Set([
  'InvalidParameterException',
  'InvalidRequestException',
  'ValidationException',
  'MalformedPolicyDocumentException',
  'PreconditionNotMetException',
  'InvalidNextTokenException',
]);

/** The SDK error's name (`ResourceNotFoundException`...), when `error` is a ProviderError wrapping one. */
export function awsErrorName(error: unknown): string | undefined {
  const cause = error instanceof ProviderError ? error.cause : error;
  return (cause as AwsErrorShape | undefined)?.name;
}

export interface AwsErrorContext {
  provider: string;
  /** The AWS secret name or ARN. */
  secret: string;
  operation: AwsOperation;
  signal?: AbortSignal;
}

/** Wraps an SDK error in a ProviderError with the right code and a message that helps an operator. */
export function awsError(error: unknown, context: AwsErrorContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const e = (error ?? {}) as AwsErrorShape;
  const name = e.name ?? 'Error';
  const where = `${context.operation} on AWS secret "${context.secret}"`;
  const detail = `${name}: ${e.message ?? 'no message'}`;
  const make = (code: ErrorCode, message: string) =>
    new ProviderError(code, message, { provider: context.provider, cause: error });

  if (context.signal?.aborted || name === 'AbortError') {
    return make('REKEY_ERR_TIMEOUT', `${where} was aborted (timeout or shutdown)`);
  }
  if (name === 'TimeoutError' && (e.code === 'ETIMEDOUT' || e.code === undefined)) {
    return make('REKEY_ERR_TIMEOUT', `${where} timed out (${e.message ?? 'no message'})`);
  }
  if (THROTTLING.has(name)) {
    return make('REKEY_ERR_THROTTLED', `${where} was throttled by AWS (${detail}); rekey retries with backoff`);
  }
  if (name === 'LimitExceededException') {
    // A quota (e.g. versions created in the last 24 hours): waiting helps, so keep it retryable.
    return make('REKEY_ERR_THROTTLED', `${where} hit a Secrets Manager quota (${detail})`);
  }
  if (DENIED.has(name)) {
    const credentials = name === 'CredentialsProviderError' ? ' (no credentials found in the SDK default chain)' : '';
    return make(
      'REKEY_ERR_DENIED',
      `AWS denied secretsmanager:${context.operation} on secret "${context.secret}"${credentials}: grant it to rekey's role ` +
        `(see providers/aws-secrets-manager/README.md). ${detail}`,
    );
  }
  if (name === 'DecryptionFailure' || name === 'EncryptionFailure') {
    const action = name === 'DecryptionFailure' ? 'kms:Decrypt' : 'kms:GenerateDataKey and kms:Encrypt';
    return make(
      'REKEY_ERR_DENIED',
      `${where} failed in KMS: rekey's role needs ${action} on the secret's KMS key, and the key must be enabled. ${detail}`,
    );
  }
  if (name === 'ResourceNotFoundException') return make('REKEY_ERR_NOT_FOUND', `${where}: not found (${detail})`);
  if (name === 'ResourceExistsException') return make('REKEY_ERR_CONFLICT', `${where}: ${detail}`);
  if (INVALID.has(name)) return make('REKEY_ERR_INVALID', `${where} was rejected: ${detail}`);
  const status = e.$metadata?.httpStatusCode;
  if (e.$fault === 'server' || name === 'InternalServiceError' || (status !== undefined && status >= 500)) {
    return make('REKEY_ERR_UNAVAILABLE', `${where}: AWS answered ${status ?? 'a server error'} (${detail})`);
  }
  if (status === undefined) {
    // No HTTP response at all: refused or dropped connection, DNS, TLS.
    return make('REKEY_ERR_UNAVAILABLE', `${where}: could not reach Secrets Manager (${e.code ?? name}: ${e.message ?? ''})`);
  }
  return make('REKEY_ERR_INVALID', `${where} failed with HTTP ${status} (${detail})`);
}
