/**
 * The admin API as the dashboard calls it: same origin, authenticated by the session cookie
 * (the browser sends it; scripts cannot read it), the session's CSRF token on every POST, and
 * a fresh Idempotency-Key per action, so a retried click makes one run. Answers are the API's
 * own shapes (docs/admin-api.md); only the fields the views show are typed here.
 *
 * The session times out after 30 minutes without its person (src/api/sessions.ts): the page's
 * polling does not count, only the person's input does. Opening the page says so, and while
 * signed in, a key, click, tap or scroll says so again (GET /ui/session with
 * `X-Rekey-Activity: 1`) at most once per ACTIVITY_EVERY_MS.
 */
import type { SyncStatus } from './rows.js';

export interface Me {
  name: string;
  scopes: string[];
  csrfToken: string;
  expiresAt: string;
  /** How long the session lasts without its person's action. */
  idleMs: number;
}

export interface SecretSummary {
  name: string;
  /** Per-client keys: the client this secret's keys belong to. */
  client: string | null;
  removed: boolean;
  status: string;
  conditions: string[];
  currentVersion: number | null;
  lastRotatedAt: string | null;
  nextRotation: string | null;
  lastRun: { id: string; status: string; finishedAt: string | null; error: string | null } | null;
}

export interface Version {
  number: number;
  state: string;
  fingerprint: string | null;
  issuedAt: string;
  promotedAt: string | null;
  graceEndsAt: string | null;
  retiredAt: string | null;
  revokedAt: string | null;
  compromisedAt: string | null;
  blockedAt: string | null;
  /** When a usage source last saw it used. */
  lastUsedAt: string | null;
  /** A previous version still in use (retiring it would cut someone off); null for other states. */
  stillUsed: boolean | null;
  issuedBy: { runId: string; trigger: string } | null;
  deliveries: Array<{ target: string; status: string; attempts: number; lastError: string | null }>;
}

export interface SecretDetail extends SecretSummary {
  versions: Version[];
  sync: SyncStatus[];
  activeRun: { id: string; kind: string; step: string; attempts: number; error: string | null; emergency: boolean } | null;
}

export interface Run {
  id: string;
  secret: string;
  kind: string;
  trigger: string;
  status: string;
  step: string;
  attempts: number;
  error: string | null;
  emergency: boolean;
  startedAt: string;
  finishedAt: string | null;
}

export interface AuditEvent {
  seq: string;
  at: string;
  actor: string;
  action: string;
  secret: string | null;
  runId: string | null;
  data: unknown;
}

export interface Leak {
  id: string;
  source: string;
  fingerprint: string;
  secret: string | null;
  version: number | null;
  outcome: string;
  receivedAt: string;
  blockedAt: string | null;
  leakToBlockedMs: number | null;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

/** A refusal of the API, by its problem code (docs/admin-api.md). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';
let onSignedOut: () => void = () => undefined;

/** The server hears of the person's input at most this often: an idle timeout of 30 minutes ends 30 to 31 minutes after the last. */
const ACTIVITY_EVERY_MS = 60_000;
/** The request that follows the person's input: it starts the session's idle time again. */
const ACTIVITY = { 'x-rekey-activity': '1' };
let activityReported = 0;
let idleCheck: number | undefined;
/** The session as last answered: how long it lasts idle, and when it ends at the latest. */
let lasts = { idleMs: 0, expiresAt: 0 };

/** The person's input, while signed in: tells the server, at most once per ACTIVITY_EVERY_MS (the polls never do). */
function personActed(): void {
  if (!csrf || performance.now() - activityReported < ACTIVITY_EVERY_MS) return;
  activityReported = performance.now();
  request('GET', '/ui/session', ACTIVITY).then(watchIdle, (error: unknown) => {
    if (error instanceof ApiError && error.code === 'REKEY_API_SESSION_INVALID') signedOut();
  });
}

/**
 * After the person's last action, asks (without acting) whether the session still exists when
 * it would have timed out, or reached its end: a view that polls nothing (audit, config) must not
 * go on showing what it showed on an unattended screen. Another tab's action may have kept the
 * session: then it asks again one idle time later.
 */
function watchIdle(): void {
  window.clearTimeout(idleCheck);
  if (!csrf || !lasts.idleMs) return;
  const wait = Math.min(lasts.idleMs, lasts.expiresAt - Date.now()) + 1000;
  idleCheck = window.setTimeout(() => {
    request('GET', '/ui/session').then(watchIdle, (error: unknown) => (error instanceof ApiError && error.status === 401 ? signedOut() : watchIdle()));
  }, Math.max(wait, 1000));
}
for (const type of ['keydown', 'pointerdown', 'wheel', 'touchstart']) document.addEventListener(type, personActed, { capture: true, passive: true });

function forget(): void {
  csrf = '';
  window.clearTimeout(idleCheck);
}

function signedOut(): void {
  forget();
  onSignedOut();
}

/** Called when the session ends under the page (expired, token revoked). */
export function whenSignedOut(callback: () => void): void {
  onSignedOut = callback;
}

async function request<T>(method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { accept: 'application/json', ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  // A change is its person's action too: the session's idle time started again.
  if (response.ok && method !== 'GET' && csrf) watchIdle();
  if (response.status === 204) return undefined as T;
  const json = (await response.json().catch(() => ({}))) as { code?: string; title?: string; detail?: string };
  if (!response.ok) {
    const error = new ApiError(response.status, json.code ?? 'UNKNOWN', json.detail ? `${json.title ?? 'refused'}: ${json.detail}` : (json.title ?? `HTTP ${response.status}`));
    if (error.code === 'REKEY_API_SESSION_INVALID' && !path.startsWith('/ui/session')) signedOut();
    throw error;
  }
  return json as T;
}

export const api = {
  get: <T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> => {
    const search = new URLSearchParams(Object.entries(query).flatMap(([k, v]) => (v === undefined || v === '' ? [] : [[k, String(v)]])));
    return request<T>('GET', `/api/v1${path}${search.size ? `?${search}` : ''}`);
  },
  /** An action: the CSRF token and a new Idempotency-Key. */
  act: <T>(path: string, body?: unknown): Promise<T> => request<T>('POST', `/api/v1${path}`, { 'x-csrf-token': csrf, 'idempotency-key': idempotencyKey() }, body),
};

/** 128 random bits (getRandomValues: randomUUID needs a secure context, plain-HTTP development is not one). */
function idempotencyKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export const session = {
  /** The session, if any; opening the page is its person's action. */
  async current(): Promise<Me | undefined> {
    try {
      activityReported = performance.now();
      return remember(await request<Me>('GET', '/ui/session', ACTIVITY));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return undefined;
      throw error;
    }
  },
  /** Exchanges the token for the session cookie; the token is not kept anywhere. */
  async signIn(token: string): Promise<Me> {
    return remember(await request<Me>('POST', '/ui/session', { authorization: `Bearer ${token}` }));
  },
  /** Where sign-in with the configured OpenID Connect provider starts, or null when there is none. */
  async oidcStart(): Promise<string | null> {
    return (await request<{ start: string | null }>('GET', '/ui/oidc')).start;
  },
  /** Ends the session; answers where to send the browser to end the OpenID Connect provider's session too, if anywhere. */
  async signOut(): Promise<string | undefined> {
    const answer = await request<{ endSession: string } | undefined>('DELETE', '/ui/session', { 'x-csrf-token': csrf });
    forget();
    return answer?.endSession;
  },
};

function remember(me: Me): Me {
  csrf = me.csrfToken;
  lasts = { idleMs: me.idleMs, expiresAt: Date.parse(me.expiresAt) };
  watchIdle();
  return me;
}

/** `encodeURIComponent` for a secret name in a path (a per-client key's `/` becomes `%2F`). */
export const segment = encodeURIComponent;

/**
 * Whether the caller's scopes allow `scope` on `secret` (or on everything), as the server
 * decides it (src/api/scopes.ts); the dashboard only hides what it would be refused.
 */
export function allows(me: Me, scope: 'read' | 'rotate' | 'revoke' | 'admin', secret?: string): boolean {
  return me.scopes.some((text) => {
    const [name, glob] = text.split(/:(.*)/s) as [string, string | undefined];
    if (name !== scope && name !== 'admin') return false;
    if (glob === undefined) return true;
    return secret !== undefined && new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&')).join('.*')}$`).test(secret);
  });
}
