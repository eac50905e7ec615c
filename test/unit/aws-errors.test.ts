// One reading of AWS SDK v3 errors for every AWS provider: the shared table, each provider's
// wrapper agreeing with it (bar the names a provider documents as its own), and no AWS message
// text in rekey's messages. Google's side: providers/gcp-secret-manager/test/gcp-errors.unit.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SecretsManagerServiceException } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { apiGatewayError } from '../../providers/aws-api-gateway/aws-errors.js';
import { iamError } from '../../providers/aws-iam-access-key/aws-errors.js';
import { secretsManagerError } from '../../providers/aws-secrets-manager/aws-errors.js';
import { classifyAwsError } from '../../src/core/kit/aws-errors.js';
import { describeError, type ErrorCode } from '../../src/core/errors.js';
import { packageRoot } from '../../src/paths.js';

const LEAK = 'ECHOED-REQUEST-zq81x';
const live = new AbortController().signal;

/** What the SDK throws for an answer from AWS: a ServiceException with name, fault and status. */
const answered = (name: string, status: number) =>
  new SecretsManagerServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: LEAK });
/** What it throws with no answer at all: a credential-chain failure, a socket error, an abort. */
const unanswered = (name: string, code?: string) => Object.assign(new Error(LEAK), { name, ...(code ? { code } : {}) });

const DENIED = [
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
];

const TABLE: Array<[string, unknown, ErrorCode]> = [
  ...DENIED.map((name): [string, unknown, ErrorCode] => [name, answered(name, 400), 'REKEY_ERR_DENIED']),
  ['CredentialsProviderError', unanswered('CredentialsProviderError'), 'REKEY_ERR_DENIED'],
  ['an unknown 403', answered('MissingAuthenticationTokenException', 403), 'REKEY_ERR_DENIED'],
  ['ThrottlingException', answered('ThrottlingException', 400), 'REKEY_ERR_THROTTLED'],
  ['Throttling', answered('Throttling', 400), 'REKEY_ERR_THROTTLED'],
  ['TooManyRequestsException', answered('TooManyRequestsException', 429), 'REKEY_ERR_THROTTLED'],
  ['RequestLimitExceeded', answered('RequestLimitExceeded', 503), 'REKEY_ERR_THROTTLED'],
  ['LimitExceededException', answered('LimitExceededException', 400), 'REKEY_ERR_THROTTLED'],
  ['an unknown 429', answered('SlowDown', 429), 'REKEY_ERR_THROTTLED'],
  ['ResourceNotFoundException', answered('ResourceNotFoundException', 400), 'REKEY_ERR_NOT_FOUND'],
  ['NotFoundException', answered('NotFoundException', 404), 'REKEY_ERR_NOT_FOUND'],
  ['NoSuchEntityException', answered('NoSuchEntityException', 404), 'REKEY_ERR_NOT_FOUND'],
  ['ResourceExistsException', answered('ResourceExistsException', 400), 'REKEY_ERR_CONFLICT'],
  ['ConflictException', answered('ConflictException', 409), 'REKEY_ERR_CONFLICT'],
  ['ConcurrentModificationException', answered('ConcurrentModificationException', 409), 'REKEY_ERR_CONFLICT'],
  ['InvalidParameterException', answered('InvalidParameterException', 400), 'REKEY_ERR_INVALID'],
  ['BadRequestException', answered('BadRequestException', 400), 'REKEY_ERR_INVALID'],
  ['an unknown 4xx', answered('SomethingNewException', 400), 'REKEY_ERR_INVALID'],
  ['InternalServiceError', answered('InternalServiceError', 500), 'REKEY_ERR_UNAVAILABLE'],
  ['an unknown 5xx', answered('ServiceUnavailableException', 503), 'REKEY_ERR_UNAVAILABLE'],
  ['a refused connection', unanswered('Error', 'ECONNREFUSED'), 'REKEY_ERR_UNAVAILABLE'],
  ['a connection reset (the SDK names it TimeoutError)', unanswered('TimeoutError', 'ECONNRESET'), 'REKEY_ERR_UNAVAILABLE'],
  ['TimeoutError', unanswered('TimeoutError', 'ETIMEDOUT'), 'REKEY_ERR_TIMEOUT'],
  ['TimeoutError with no code', unanswered('TimeoutError'), 'REKEY_ERR_TIMEOUT'],
  ['AbortError', unanswered('AbortError'), 'REKEY_ERR_TIMEOUT'],
];

/** Every AWS provider's wrapper, with the names it documents reading its own way. */
const PROVIDERS: Array<[string, (error: unknown) => { code: ErrorCode; message: string }, Record<string, ErrorCode>]> = [
  ['aws-secrets-manager', (e) => secretsManagerError(e, { provider: 'p', secret: 'prod/db', operation: 'PutSecretValue', signal: live }), {}],
  ['aws-api-gateway', (e) => apiGatewayError(e, { provider: 'p', operation: 'CreateApiKey', what: 'key k', signal: live }), {}],
  [
    'aws-iam-access-key',
    (e) => iamError(e, { provider: 'p', secret: 's', versionId: 'v', action: 'CreateAccessKey', userName: 'u', signal: live }),
    { LimitExceededException: 'REKEY_ERR_CONFLICT' }, // two keys per user: a retry lists again
  ],
];

describe('classifyAwsError', () => {
  it.each(TABLE)('%s -> %s', (_name, error, code) => {
    expect(classifyAwsError(error, live).code).toBe(code);
  });

  it('reads any error as a TIMEOUT once the call was aborted', () => {
    expect(classifyAwsError(answered('InternalServiceError', 500), AbortSignal.abort()).code).toBe('REKEY_ERR_TIMEOUT');
  });
});

describe.each(PROVIDERS)('%s', (_provider, wrap, own) => {
  it.each(TABLE)('reads %s as the shared table does', (name, error, code) => {
    expect(wrap(error).code).toBe(own[name] ?? code);
  });

  it('names the SDK error and the HTTP status, never AWS\'s message text', () => {
    for (const [, error] of TABLE) {
      const wrapped = wrap(error);
      expect(wrapped.message).not.toContain(LEAK);
      expect(describeError(wrapped)).not.toContain(LEAK);
    }
    expect(wrap(answered('AccessDeniedException', 403)).message).toContain('AccessDeniedException (HTTP 403)');
    expect(wrap(unanswered('Error', 'ECONNREFUSED')).message).toContain('Error ECONNREFUSED (no HTTP response)');
  });
});

describe('aws-secrets-manager KMS failures', () => {
  // The KMS actions the provider README's least-privilege policy grants: what a denied message may ask for.
  const POLICY = ['kms:Decrypt', 'kms:GenerateDataKey'];
  const asked = (name: string, operation: 'GetSecretValue' | 'PutSecretValue') => {
    const wrapped = secretsManagerError(answered(name, 400), { provider: 'p', secret: 'prod/db', operation, signal: live });
    expect(wrapped.code).toBe('REKEY_ERR_DENIED');
    return [...wrapped.message.matchAll(/kms:[A-Za-z]+/g)].map((m) => m[0]);
  };

  it('ask for kms:Decrypt to read and kms:GenerateDataKey to write, nothing the README policy leaves out', () => {
    expect(asked('DecryptionFailure', 'GetSecretValue')).toEqual(['kms:Decrypt']);
    expect(asked('EncryptionFailure', 'PutSecretValue')).toEqual(['kms:GenerateDataKey']);
    const policy = readFileSync(join(packageRoot, 'providers/aws-secrets-manager/README.md'), 'utf8');
    const granted = [...policy.matchAll(/"Action": \[([^\]]*)\]/g)].flatMap((m) => [...m[1]!.matchAll(/"(kms:[A-Za-z]+)"/g)].map((k) => k[1]));
    expect(granted.sort()).toEqual(POLICY);
  });
});
