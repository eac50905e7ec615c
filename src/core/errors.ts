/**
 * Every error rekey raises on purpose, with a stable code (fastify's pattern).
 * Messages and metadata never carry a secret value: they name secrets, versions,
 * providers and permissions only.
 */

/** Codes and whether an operation failing with them is worth retrying. */
export const ERROR_CODES = {
  /** A provider's peer could not be reached or answered 5xx. */
  REKEY_ERR_UNAVAILABLE: true,
  /** A provider's peer asked us to slow down. */
  REKEY_ERR_THROTTLED: true,
  /** A provider call took longer than its timeout. */
  REKEY_ERR_TIMEOUT: true,
  /** Optimistic concurrency lost (etag, version stage moved); retry reads fresh state. */
  REKEY_ERR_CONFLICT: true,
  /** A probe did not (yet) see the new value accepted; propagation may lag. */
  REKEY_ERR_VERIFY_FAILED: true,
  /** The peer refused our credentials or permissions. */
  REKEY_ERR_DENIED: false,
  /** The secret, version or resource does not exist at the peer. */
  REKEY_ERR_NOT_FOUND: false,
  /** The peer rejected the request as malformed or the configuration is wrong for it. */
  REKEY_ERR_INVALID: false,
  /** rekey.yaml or an argument is invalid. */
  REKEY_ERR_CONFIG: false,
  /**
   * The issuer already holds as many live credentials as it allows (an IAM user's two access
   * keys). Not retried by a rotation; an emergency rotation after a leak ends the previous
   * versions' overlap to make room, then tries again.
   */
  REKEY_ERR_LIMIT: false,
  /** A version was reported leaked while a run was using it. */
  REKEY_ERR_COMPROMISED: false,
  /** A named secret or version is not known to rekey. */
  REKEY_ERR_UNKNOWN: false,
  /**
   * A rotation run was recorded but its job could not be queued (Redis unavailable): the run
   * exists and reconcile() queues it on its next pass. Retrying the request joins that run.
   */
  REKEY_ERR_NOT_QUEUED: true,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface RekeyErrorOptions {
  /** Overrides the code's default retryability. */
  retryable?: boolean;
  /** The provider instance (its name in rekey.yaml) that failed. */
  provider?: string;
  /** The underlying error; it is logged through {@link describeError}, never its raw message. */
  cause?: unknown;
  /** For a retryable error: the server named when to try again (`Retry-After`, src/core/kit/retry-after.ts), in ms from now. */
  retryAfterMs?: number;
}

export class RekeyError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly provider: string | undefined;
  /** See RekeyErrorOptions.retryAfterMs: the next attempt waits at least this long. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: RekeyErrorOptions = {}) {
    super(sanitize(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RekeyError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code];
    this.provider = options.provider;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** An error raised by a provider adapter; `provider` is required. */
export class ProviderError extends RekeyError {
  declare readonly provider: string;

  constructor(code: ErrorCode, message: string, options: RekeyErrorOptions & { provider: string }) {
    super(code, message, options);
    this.name = 'ProviderError';
  }
}

/** A configuration problem, located by file and path inside it. */
export class ConfigError extends RekeyError {
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[]) {
    super('REKEY_ERR_CONFIG', `${file}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export interface ConfigIssue {
  /** Dotted path inside the document, e.g. `secrets.payments.grace`. */
  path: string;
  message: string;
}

/** Whether retrying the failed operation may help. Unknown errors are retried. */
export function isRetryable(error: unknown): boolean {
  return error instanceof RekeyError ? error.retryable : true;
}

/**
 * A one-line, log-safe description: code, provider and a sanitized message. SDK
 * messages can carry request ids and signed-request fragments; those are stripped.
 */
export function describeError(error: unknown): string {
  if (error instanceof RekeyError) {
    return sanitize(`${error.code}${error.provider ? ` (${error.provider})` : ''}: ${error.message}`);
  }
  if (error instanceof Error) return sanitize(`${error.name}: ${error.message}`);
  return 'non-error thrown';
}

const SANITIZERS: Array<[RegExp, string]> = [
  [/Credential=[^,\s]+/g, 'Credential=[stripped]'],
  [/Signature=[0-9a-f]+/gi, 'Signature=[stripped]'],
  [/\b(request ?id|x-amzn-requestid|x-amz-request-id)[:=]?\s*[\w-]+/gi, '$1 [stripped]'],
  [/\b(bearer|basic)\s+[\w.~+/=-]+/gi, '$1 [stripped]'],
  // scheme://user:password@host, also with no user name and with an @ inside the password.
  [/(:\/\/[^:/@\s]*:)[^\s/]*@/g, '$1[stripped]@'],
  // A password as a URL's query parameter (`?password=`, `&sslpassword=`: the pg driver and libpq take them there).
  [/([?&][\w-]*password=)[^&\s#]*/gi, '$1[stripped]'],
];

/**
 * Control characters (C0, DEL, C1), line and paragraph separators and bidirectional
 * overrides: PostgreSQL refuses a NUL in a text column, and the rest can forge log lines
 * or hide text in a terminal.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]+/g;

/** Longest error text rekey stores or logs; the rest is cut. */
export const MAX_ERROR_TEXT = 1000;

/**
 * The one function every error text passes through before it is stored (runs.error,
 * deliveries.last_error), logged or answered: credential-shaped fragments stripped, control
 * characters replaced, length capped. It cannot remove a value a message was built from:
 * messages are built from rekey's own words, codes and statuses (STYLE.md), never from a
 * request's headers or body nor a peer's free text.
 */
export function sanitize(message: string): string {
  const text = SANITIZERS.reduce((out, [pattern, replacement]) => out.replace(pattern, replacement), message).replace(CONTROL, ' ');
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}… (cut)` : text;
}
