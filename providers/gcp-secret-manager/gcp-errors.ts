/**
 * Maps Secret Manager's status codes to rekey's ProviderError codes, over either transport: gRPC
 * errors carry the gRPC code; over REST (the client's fallback mode) google-auth-library's
 * transport throws with the HTTP status and the body, a google.rpc.Status whose `status` names the
 * same code, or a bare HTTP status when a proxy answered instead of Google. The client's error
 * rides along as `cause`; the message names the secret, the status and, for permission problems,
 * the IAM permission the method needs. Google's own text (`details`, the REST body) is read to tell
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

/**
 * The code a bare HTTP status stands for (Google's mapping, google/rpc/code.proto); other 4xx are
 * invalid requests and other 5xx an unavailable service.
 */
const FROM_HTTP: Record<number, number> = {
  400: Status.INVALID_ARGUMENT,
  401: Status.UNAUTHENTICATED,
  403: Status.PERMISSION_DENIED,
  404: Status.NOT_FOUND,
  408: Status.DEADLINE_EXCEEDED,
  409: Status.ABORTED,
  412: Status.FAILED_PRECONDITION,
  429: Status.RESOURCE_EXHAUSTED,
  499: Status.CANCELLED,
  501: Status.UNIMPLEMENTED,
  504: Status.DEADLINE_EXCEEDED,
};

interface ClientError {
  code?: unknown;
  /** The HTTP status, on errors of the REST transport. */
  status?: unknown;
  details?: unknown;
  message?: unknown;
  name?: unknown;
}

/** The `status` name of a google.rpc.Status error body (`{"error":{"code":409,"status":"ABORTED",...}}`), if it is one. */
function bodyStatus(body: unknown): number | undefined {
  if (typeof body !== 'string' || !body.startsWith('{')) return undefined;
  try {
    const name = (JSON.parse(body) as { error?: { status?: unknown } }).error?.status;
    return typeof name === 'string' && Object.hasOwn(Status, name) ? Status[name as keyof typeof Status] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The status code (gRPC numbering) of a client error, or of the one a ProviderError wraps: the
 * gRPC code; over REST the google.rpc.Status of the body, or else what the HTTP status stands for.
 */
export function rpcCode(error: unknown): number | undefined {
  const e = (error instanceof ProviderError ? error.cause : error) as ClientError | undefined;
  if (typeof e?.status === 'number') {
    return bodyStatus(e.message) ?? FROM_HTTP[e.status] ?? (e.status >= 500 ? Status.UNAVAILABLE : Status.INVALID_ARGUMENT);
  }
  return typeof e?.code === 'number' ? e.code : undefined;
}

/** How the status reads in messages: `NOT_FOUND`, or `HTTP 404 NOT_FOUND` over REST. */
function statusText(e: ClientError | undefined, code: number | undefined): string {
  const name = code === undefined ? undefined : (NAMES[code] ?? `gRPC code ${code}`);
  if (typeof e?.status === 'number') return `HTTP ${e.status} ${name}`;
  if (name) return name;
  const system = typeof e?.code === 'string' && /^[A-Z_]{1,40}$/.test(e.code) ? ` ${e.code}` : '';
  return `${typeof e?.name === 'string' ? e.name : 'error'}${system}, no status`;
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
  const code = rpcCode(error);
  const e = error as ClientError | undefined;
  const text = [e?.details, e?.message].filter((t) => typeof t === 'string').join(' ');
  const detail = statusText(e, code);
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
