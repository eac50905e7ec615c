/**
 * AWS SDK v3 errors, read by their shape (`name`, `$fault`, `$metadata.httpStatusCode`) the same
 * way for every AWS provider; nothing here imports the SDK. A provider adds only what is its own:
 * the call's description, the IAM action to grant, and names it reads differently.
 *
 * Messages name the SDK error and the HTTP status, never AWS's message text: that is free text
 * which may echo the request. The SDK error rides along as `cause`; describeError never prints it.
 */
import { ProviderError, type ErrorCode } from '../errors.js';

interface AwsErrorShape {
  name?: unknown;
  code?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

// LimitExceededException is a quota (versions per day, requests per second): waiting helps.
const THROTTLED = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'LimitExceededException',
]);
const DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'CredentialsProviderError',
]);
const NOT_FOUND = new Set(['ResourceNotFoundException', 'NotFoundException', 'NoSuchEntityException']);
const CONFLICT = new Set(['ResourceExistsException', 'ConflictException', 'ConcurrentModificationException']);
const INVALID = new Set([
  'BadRequestException',
  'InvalidParameterException',
  'InvalidRequestException',
  'InvalidNextTokenException',
  'ValidationException',
  'MalformedPolicyDocumentException',
  'PreconditionNotMetException',
]);

/** What rekey makes of one SDK error. */
export interface AwsFailure {
  code: ErrorCode;
  /** The SDK error's name, e.g. `AccessDeniedException`; `Error` when it has none. */
  name: string;
  /** The HTTP status of AWS's answer; undefined when none came (refused, DNS, TLS, aborted). */
  status: number | undefined;
}

/** Classifies an SDK error. `signal` is the call's: once it is aborted, any error is a TIMEOUT. */
export function classifyAwsError(error: unknown, signal?: AbortSignal): AwsFailure {
  const e = (error ?? {}) as AwsErrorShape;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  // The SDK's HTTP handler also names a reset or broken connection TimeoutError (code ECONNRESET,
  // EPIPE): that is a peer gone, not a timeout. Its own timeouts carry no code or ETIMEDOUT.
  const timedOut = name === 'AbortError' || (name === 'TimeoutError' && (e.code === undefined || e.code === 'ETIMEDOUT'));
  return { code: codeOf(name, status, e.$fault === 'server', timedOut || signal?.aborted === true), name, status };
}

function codeOf(name: string, status: number | undefined, serverFault: boolean, timedOut: boolean): ErrorCode {
  if (timedOut) return 'REKEY_ERR_TIMEOUT';
  if (THROTTLED.has(name) || status === 429) return 'REKEY_ERR_THROTTLED';
  if (DENIED.has(name)) return 'REKEY_ERR_DENIED';
  if (NOT_FOUND.has(name)) return 'REKEY_ERR_NOT_FOUND';
  if (CONFLICT.has(name)) return 'REKEY_ERR_CONFLICT';
  if (INVALID.has(name)) return 'REKEY_ERR_INVALID';
  if (serverFault || status === undefined || status >= 500) return 'REKEY_ERR_UNAVAILABLE';
  if (status === 401 || status === 403) return 'REKEY_ERR_DENIED';
  return 'REKEY_ERR_INVALID';
}

/** The SDK error's name, also when `error` is a ProviderError wrapping it (`ResourceNotFoundException`...). */
export function awsErrorName(error: unknown): string | undefined {
  const cause = error instanceof ProviderError ? error.cause : error;
  const name = (cause as AwsErrorShape | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

/** A provider's own reading of one SDK error name: its code and what the message should say. */
export interface AwsSpecialCase {
  code: ErrorCode;
  hint: string;
}

export interface AwsErrorContext {
  /** The provider instance (its name in rekey.yaml). */
  provider: string;
  /** The call that failed, e.g. `PutSecretValue on AWS secret "prod/db"`. */
  call: string;
  /** What rekey's role needs when AWS denies the call, e.g. `secretsmanager:PutSecretValue on it (see ...README.md)`. */
  grant: string;
  signal?: AbortSignal;
  /** Names this provider reads differently from the shared table (KMS failures, IAM's two-key limit). */
  special?: Readonly<Record<string, AwsSpecialCase>>;
}

/**
 * Wraps an SDK error in a ProviderError: `<call> failed with <name> (HTTP <status>): <hint>`.
 * A ProviderError passes through unchanged.
 */
export function awsProviderError(error: unknown, context: AwsErrorContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const failure = classifyAwsError(error, context.signal);
  const special = failure.code === 'REKEY_ERR_TIMEOUT' ? undefined : context.special?.[failure.name];
  const code = special?.code ?? failure.code;
  const message = `${context.call} failed with ${label(error, failure)}: ${special?.hint ?? hint(code, failure, context.grant)}`;
  return new ProviderError(code, message, { provider: context.provider, cause: error });
}

/** `AccessDeniedException (HTTP 403)`, `Error ECONNREFUSED (no HTTP response)`. */
function label(error: unknown, { name, status }: AwsFailure): string {
  // The name comes off the wire (the error's type): print it only if it looks like one.
  const shown = /^[A-Za-z][\w.-]{0,99}$/.test(name) ? name : 'an unnamed error';
  const code = (error as AwsErrorShape | undefined)?.code;
  const system = typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code) ? ` ${code}` : '';
  return `${shown}${system} (${status === undefined ? 'no HTTP response' : `HTTP ${status}`})`;
}

function hint(code: ErrorCode, { name, status }: AwsFailure, grant: string): string {
  switch (code) {
    case 'REKEY_ERR_TIMEOUT':
      return 'timed out or was aborted (timeout or shutdown)';
    case 'REKEY_ERR_THROTTLED':
      return 'AWS throttled it; rekey retries with backoff';
    case 'REKEY_ERR_DENIED':
      return name === 'CredentialsProviderError'
        ? `no credentials found in the SDK's default chain; rekey's role needs ${grant}`
        : `AWS denied it; rekey's role needs ${grant}`;
    case 'REKEY_ERR_NOT_FOUND':
      return 'not found';
    case 'REKEY_ERR_CONFLICT':
      return 'a concurrent change got there first; a retry reads fresh state';
    case 'REKEY_ERR_UNAVAILABLE':
      return status === undefined ? 'AWS could not be reached' : 'AWS answered with a server error';
    default: // REKEY_ERR_INVALID, the only other code codeOf gives
      return 'AWS rejected the request';
  }
}
