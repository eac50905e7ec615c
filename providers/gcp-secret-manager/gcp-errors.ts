/**
 * Maps gRPC status codes from Secret Manager to rekey's ProviderError codes. The client's error
 * rides along as `cause`; the message names the secret, the gRPC status and, for permission
 * problems, the IAM permission the method needs. Google's own text (`details`) is read to tell
 * cases apart but never copied: it is free text that may echo the request.
 */
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';

/** The SecretManagerService methods this provider calls. */
export type GcpMethod =
  | 'GetSecret'
  | 'CreateSecret'
  | 'UpdateSecret'
  | 'AddSecretVersion'
  | 'AccessSecretVersion'
  | 'GetSecretVersion'
  | 'ListSecretVersions'
  | 'DisableSecretVersion'
  | 'DestroySecretVersion';

/** The IAM permission each method needs (https://cloud.google.com/secret-manager/docs/access-control). */
export const PERMISSION: Record<GcpMethod, string> = {
  GetSecret: 'secretmanager.secrets.get',
  CreateSecret: 'secretmanager.secrets.create',
  UpdateSecret: 'secretmanager.secrets.update',
  AddSecretVersion: 'secretmanager.versions.add',
  AccessSecretVersion: 'secretmanager.versions.access',
  GetSecretVersion: 'secretmanager.versions.get',
  ListSecretVersions: 'secretmanager.versions.list',
  DisableSecretVersion: 'secretmanager.versions.disable',
  DestroySecretVersion: 'secretmanager.versions.destroy',
};

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const Status = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const NAMES = Object.fromEntries(Object.entries(Status).map(([name, code]) => [code, name])) as Record<number, string>;

/** The gRPC status code of a client error (or of the one a ProviderError wraps), if it has one. */
export function grpcCode(error: unknown): number | undefined {
  const cause = error instanceof ProviderError ? error.cause : error;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export interface GcpErrorContext {
  provider: string;
  /** The secret's resource name. */
  secret: string;
  method: GcpMethod;
  signal?: AbortSignal;
}

/** Wraps a client error in a ProviderError with the right code and an actionable message. */
export function gcpError(error: unknown, context: GcpErrorContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const code = grpcCode(error);
  const e = error as { details?: unknown; message?: unknown; name?: unknown } | undefined;
  const text = [e?.details, e?.message].filter((t) => typeof t === 'string').join(' ');
  const detail = code === undefined ? `${typeof e?.name === 'string' ? e.name : 'error'}, no gRPC status` : (NAMES[code] ?? `gRPC code ${code}`);
  const where = `${context.method} on ${context.secret}`;
  const make = (rekeyCode: ErrorCode, message: string) =>
    new ProviderError(rekeyCode, message, { provider: context.provider, cause: error });

  if (context.signal?.aborted) return make('REKEY_ERR_TIMEOUT', `${where} was aborted (timeout or shutdown)`);
  switch (code) {
    case Status.RESOURCE_EXHAUSTED:
      return make('REKEY_ERR_THROTTLED', `${where} hit a Secret Manager quota (${detail}); rekey retries with backoff`);
    case Status.PERMISSION_DENIED:
      return make(
        'REKEY_ERR_DENIED',
        `Google denied ${PERMISSION[context.method]} on ${context.secret}: grant it to rekey's service account ` +
          `(see providers/gcp-secret-manager/README.md). ${detail}`,
      );
    case Status.UNAUTHENTICATED:
      return make('REKEY_ERR_DENIED', `${where}: Application Default Credentials were rejected (${detail})`);
    case Status.NOT_FOUND:
      return make('REKEY_ERR_NOT_FOUND', `${where}: not found (${detail})`);
    case Status.ABORTED:
    case Status.ALREADY_EXISTS:
      return make('REKEY_ERR_CONFLICT', `${where} lost a concurrent change (${detail}); retry reads fresh state`);
    case Status.FAILED_PRECONDITION:
      // Secret Manager answers an etag mismatch with FAILED_PRECONDITION (docs: /secret-manager/docs/etags).
      if (context.method === 'UpdateSecret' || /etag/i.test(text)) {
        return make('REKEY_ERR_CONFLICT', `${where}: the secret changed since it was read (etag mismatch); retry reads fresh state`);
      }
      return make('REKEY_ERR_INVALID', `${where} was refused in the resource's current state (${detail})`);
    case Status.INVALID_ARGUMENT:
    case Status.UNIMPLEMENTED:
      return make('REKEY_ERR_INVALID', `${where} was rejected (${detail})`);
    case Status.DEADLINE_EXCEEDED:
    case Status.CANCELLED:
      return make('REKEY_ERR_TIMEOUT', `${where} timed out (${detail})`);
    case Status.UNAVAILABLE:
    case Status.INTERNAL:
    case Status.UNKNOWN:
      return make('REKEY_ERR_UNAVAILABLE', `${where}: Secret Manager is unavailable (${detail})`);
    default:
      if (code === undefined && /default credentials|could not load the default/i.test(text)) {
        return make('REKEY_ERR_DENIED', `${where}: no Application Default Credentials found (${detail})`);
      }
      return make('REKEY_ERR_UNAVAILABLE', `${where} failed (${detail})`);
  }
}
