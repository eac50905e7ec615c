/**
 * `rekey agent`: a sidecar for workloads that cannot call `rekey server` themselves. It
 * authenticates with the workload's credential (a client key, a projected service account
 * token file: read for every request), keeps tokens and values in memory through the client
 * library, and:
 *
 * - serves them on loopback only: `GET /v1/token?audience=A` and `GET /v1/secrets/{name}`,
 *   each request carrying the per-host token in `X-Rekey-Agent-Token` (request-forgery
 *   protection, as the AWS Secrets Manager Agent's `X-Aws-Parameters-Secrets-Token`): a
 *   server-side request forgery through the app cannot add it. Requests with
 *   `X-Forwarded-For` or `Forwarded` (relayed by a proxy), with `Origin` (a browser page), or with
 *   a `Host` other than 127.0.0.1 or localhost at its port (a name rebound to 127.0.0.1) are refused too;
 * - renders template files (`{{ secret "name" }}`, `{{ token "audience" }}`), 0600, replaced
 *   atomically: the only way a value reaches the disk, and only when asked;
 * - refreshes what it holds before it expires and at once on the change stream, then renders
 *   again and signals a process (`SIGHUP` to a pid) once rendered files stopped changing; a value
 *   revoked with no replacement to fetch is blanked in (or removed with) the files that hold it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient, RekeyClientError, type ClientLogEvent, type RekeyClient, type SecretChange } from '../client/index.js';
import { renewalDelay, RENEW_FLOOR_MS } from '../client/renew.js';
import { renderTemplates, type Template } from './templates.js';

export const AGENT_TOKEN_HEADER = 'x-rekey-agent-token';
/** setTimeout's longest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A failed refresh is tried again after up to this, doubling with each failure in a row... */
const RETRY_BASE_MS = 5_000;
/** ...up to this: a value's default lifetime is 5 minutes, refreshed 1 minute before it ends. */
const RETRY_MAX_MS = 60_000;

/**
 * The wait after the `failures`-th failure in a row: between half and all of the exponential cap
 * (equal jitter), so a credential refused for good is not asked about every few seconds for ever,
 * and agents refused together (their client key family revoked, the server restarting) come back spread out.
 */
function retryDelay(failures: number): number {
  const cap = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(failures - 1, 16));
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

/**
 * Why `--pid-file` named no process to signal: it is a link or not a regular file, other users may
 * write it, it has another name (a hard link), the process is not its owner's (or there is none, or
 * no /proc to tell), or the process started after the file was written (a reused pid).
 */
export type PidRefusal = 'not_regular_file' | 'writable_by_others' | 'hard_linked' | 'other_owner' | 'no_process' | 'started_after_written';

/**
 * What becomes of a rendered file holding a value that was revoked (a leak blocked first, a
 * secret removed) when no replacement can be fetched: `blank` rewrites it (atomically, 0600) with
 * that value's place empty, `remove` deletes it, `keep` leaves the revoked value in it.
 */
export type OnRevoke = 'blank' | 'remove' | 'keep';

/** What the agent's logger receives: codes, numbers and names of secrets; never a value or token. */
export type AgentLogEvent =
  | ClientLogEvent
  | { code: 'agent_listening'; port: number }
  | { code: 'agent_refused'; status: number }
  | { code: 'agent_refreshed'; secret: string; version: number }
  /** `delayMs`: until the next try; it grows with each failure in a row. */
  | { code: 'agent_refresh_failed'; secret?: string; audience?: string; delayMs: number }
  | { code: 'agent_rendered'; files: number }
  /** `file`: the destination; `reason`: the client's error code (`forbidden`, `unavailable`, ...) or the file system's (`ENOENT`, `EACCES`, `ENOSPC`, ...). */
  | { code: 'agent_render_failed'; file: string; reason: string }
  /**
   * A value revoked (a `revoked` event, or a `ready` naming no current version) could not be fetched again: the files
   * naming `secrets` were rewritten with it empty (`blank`) or removed (`remove`); `files`: how many changed.
   */
  | { code: 'agent_withdrawn'; secrets: string[]; onRevoke: Exclude<OnRevoke, 'keep'>; files: number }
  | { code: 'agent_signalled'; pid: number }
  /** The pid file was not trusted, or named no process it may signal; nothing was signalled (see pidFrom(), src/agent/run.ts). */
  | { code: 'agent_pid_refused'; reason: PidRefusal }
  | { code: 'agent_signal_failed'; pid: number };

export interface AgentOptions {
  server: string;
  credential: () => Promise<string>;
  credentialType?: string;
  /** The per-host token every request must carry. */
  requestToken: string;
  /** Loopback port to listen on (0: any free one). */
  port: number;
  /** Secrets to fetch at start and keep fresh. */
  secrets: string[];
  /** Audiences whose tokens to fetch at start and keep fresh. */
  audiences: string[];
  templates: Template[];
  /**
   * Process to signal when a rendered file changed, and how. `quietMs`: the signal waits until no
   * file changed for this long (5 times as long at most), so changes a moment apart (two secrets
   * rotated one after the other) are told once. @defaultValue quietMs 1000
   */
  notify?: { pid: () => Promise<number | undefined>; signal: NodeJS.Signals; quietMs?: number };
  /**
   * A file naming a secret whose value was revoked, when the value cannot be fetched again (no
   * replacement yet): rewritten with its place empty, removed, or kept; the process is signalled
   * as on a change. @defaultValue 'blank'
   */
  onRevoke?: OnRevoke;
  logger?: (event: AgentLogEvent) => void;
}

export interface Agent {
  url: string;
  client: RekeyClient;
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const log = options.logger ?? (() => {});
  const client = createClient({ url: options.server, credential: options.credential, credentialType: options.credentialType, logger: log });
  const timers = new Map<string, NodeJS.Timeout>();
  /** Failures in a row of each key's refresh. */
  const failures = new Map<string, number>();
  const secrets = new Set([...options.secrets, ...options.templates.flatMap((t) => t.secrets)]);
  const audiences = new Set([...options.audiences, ...options.templates.flatMap((t) => t.audiences)]);
  let stopped = false;
  /** By secret, the version the last rendering read: what the files hold (a revoked version that is not it is in none of them). */
  const rendered = new Map<string, number>();

  /** Re-renders the templates (one rendering at a time); signals the process when a file changed. */
  let rendering = Promise.resolve();
  const queueRender = () => {
    const run = rendering.then(renderNow);
    rendering = run.catch(() => {}); // logged by renderNow, file by file
    return run;
  };
  const render = () => rendering.then(() => queueRender().catch(() => {}));
  const renderNow = async () => {
    // A refresh still out when the agent stopped renders nothing, and reads nothing more with its credential.
    if (!options.templates.length || stopped) return;
    const read = {
      secret: async (name: string) => {
        const { value, version } = await client.secret(name);
        rendered.set(name, version);
        return value;
      },
      token: async (audience: string) => (await client.token(audience)).token,
    };
    // Each template on its own: one that fails does not keep the process from hearing that another file changed.
    let changed = 0;
    let failure: { error: unknown } | undefined;
    for (const template of options.templates) {
      if (stopped) break;
      try {
        changed += await renderTemplates([template], read);
      } catch (error) {
        log({ code: 'agent_render_failed', file: template.destination, reason: reasonOf(error) });
        failure ??= { error };
      }
    }
    log({ code: 'agent_rendered', files: changed });
    if (changed) signalSoon();
    if (failure) throw failure.error;
  };
  /**
   * The files that name `names` (values revoked, no replacement fetched) rewritten with those
   * values empty, or removed (`onRevoke`): the revoked value is not left on disk. In the rendering
   * queue, so a rendering of the replacement (fetched meanwhile) comes after, not before.
   */
  const withdraw = (names: string[]) => {
    const onRevoke = options.onRevoke ?? 'blank';
    const affected = options.templates.filter((template) => template.secrets.some((name) => names.includes(name)));
    if (onRevoke === 'keep' || !affected.length) return;
    rendering = rendering.then(async () => {
      if (stopped) return;
      for (const name of names) rendered.delete(name);
      // Every other placeholder as the client has it, or empty when it cannot be read now: the file is not left holding the revoked value for want of another.
      const read = {
        secret: async (name: string) => (names.includes(name) ? '' : await client.secret(name).then((v) => v.value, () => '')),
        token: (audience: string) => client.token(audience).then((t) => t.token, () => ''),
      };
      let changed = 0;
      for (const template of affected) {
        if (stopped) break;
        try {
          if (onRevoke === 'remove') changed += await removed(template.destination);
          else changed += await renderTemplates([template], read);
        } catch (error) {
          log({ code: 'agent_render_failed', file: template.destination, reason: reasonOf(error) });
          // A rewrite that failed (the disk full) would leave the revoked value: removed instead.
          if (onRevoke === 'blank') changed += await removed(template.destination).catch(() => 0);
        }
      }
      log({ code: 'agent_withdrawn', secrets: names, onRevoke, files: changed });
      if (changed) signalSoon();
    });
  };
  /** Signals the process once no file has changed for `quietMs` (or `5 × quietMs` after the first change not yet told). */
  let signalTimer: NodeJS.Timeout | undefined;
  let signalBy = 0;
  const signalSoon = () => {
    if (!options.notify) return;
    const quietMs = options.notify.quietMs ?? 1_000;
    if (!signalTimer) signalBy = Date.now() + 5 * quietMs;
    clearTimeout(signalTimer);
    signalTimer = setTimeout(() => {
      signalTimer = undefined;
      void signal();
    }, Math.max(0, Math.min(quietMs, signalBy - Date.now()))).unref();
  };
  const signal = async () => {
    // Run from a timer: a pid source that fails is no pid (nothing to tell), not an unhandled rejection.
    const pid = options.notify && !stopped ? await options.notify.pid().catch(() => undefined) : undefined;
    if (!pid || !options.notify || stopped) return;
    try {
      process.kill(pid, options.notify.signal);
      log({ code: 'agent_signalled', pid });
    } catch {
      // Exited (a stale pid file) or not ours: nothing to tell, and the files are rendered; the process reads them when it starts.
      log({ code: 'agent_signal_failed', pid });
    }
  };
  /**
   * Fetches `key` now, then again at its renewal time (after a failure: after retryDelay()); whether it was fetched.
   * A timed fetch that fetched renders; one that failed does not (the rendering would read it again, and fail).
   */
  const keep = async (key: string, fetch: () => Promise<{ expiresAt: number }>, what: { secret: string } | { audience: string }): Promise<boolean> => {
    clearTimeout(timers.get(key));
    if (stopped) return false;
    let delayMs: number;
    let fetched = false;
    try {
      const { expiresAt } = await fetch();
      failures.delete(key);
      fetched = true;
      // At a random point of what is left (agents told of a change together, or holding a value that expires at the
      // secret's next scheduled rotation, do not come back together); the client hands out nothing past its expiry,
      // so a timer that fires after it (a second at least: an expiry already passed is not asked about in a loop) only renders later.
      // No longer than a timer can wait: Node runs a longer one after 1 ms, which refetched (from the cache) in a loop.
      delayMs = Math.min(MAX_TIMER_MS, Math.max(RENEW_FLOOR_MS, renewalDelay(expiresAt - Date.now())));
    } catch {
      const inARow = (failures.get(key) ?? 0) + 1;
      failures.set(key, inARow);
      delayMs = retryDelay(inARow);
      log({ code: 'agent_refresh_failed', ...what, delayMs });
    }
    if (!stopped) timers.set(key, setTimeout(() => void keep(key, fetch, what).then((fetched) => (fetched ? render() : undefined)), delayMs).unref());
    return fetched;
  };
  const keepSecret = (name: string) =>
    keep(`secret:${name}`, async () => {
      const value = await client.secret(name);
      log({ code: 'agent_refreshed', secret: name, version: value.version });
      return value;
    }, { secret: name });
  const keepToken = (audience: string) => keep(`token:${audience}`, () => client.token(audience), { audience });

  const unsubscribe = client.subscribe((change) => {
    // The client has dropped what the change made stale: fetch it again, render, signal.
    const names = change.type === 'ready' ? change.secrets.map((s) => s.secret) : [change.secret];
    // A revocation drops every cached token too (it may be their signing key's): minted again now.
    const tokens = change.type === 'revoked' ? [...audiences].map(keepToken) : [];
    const revoked = revokedIn(change, rendered);
    const kept = names.filter((name) => secrets.has(name)).map(async (name) => ({ name, fetched: await keepSecret(name) }));
    void Promise.all([Promise.all(kept), Promise.all(tokens)]).then(([values, fetchedTokens]) => {
      // A revoked value with no replacement to fetch is not left in the files (`onRevoke`).
      const lost = values.filter((v) => !v.fetched && revoked.includes(v.name)).map((v) => v.name);
      if (lost.length) withdraw(lost);
      // Rendered when something was fetched: a refresh that failed would fail the rendering too, reading it again.
      return values.some((v) => v.fetched) || fetchedTokens.includes(true) ? render() : undefined;
    });
  });
  /** Ends the stream and the refreshes: what would otherwise keep the process running. */
  const halt = () => {
    stopped = true;
    clearTimeout(signalTimer);
    unsubscribe();
    for (const timer of timers.values()) clearTimeout(timer);
    client.close();
  };
  const server = createServer((request, response) => void answer(request, response, options.requestToken, client, log));
  try {
    await Promise.all([...[...secrets].map(keepSecret), ...[...audiences].map(keepToken)]);
    await queueRender(); // a template that cannot be rendered at start stops the agent
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, '127.0.0.1', resolve);
    });
  } catch (error) {
    // Left running, the stream and the timers would keep `rekey agent` alive, serving nothing, instead of exiting.
    halt();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  log({ code: 'agent_listening', port });
  return {
    url: `http://127.0.0.1:${port}`,
    client,
    async stop() {
      halt();
      await close(server);
    },
  };
}

async function answer(request: IncomingMessage, response: ServerResponse, requestToken: string, client: RekeyClient, log: (event: AgentLogEvent) => void): Promise<void> {
  const send = (status: number, body: unknown) => {
    if (status >= 400) log({ code: 'agent_refused', status });
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  };
  const presented = request.headers[AGENT_TOKEN_HEADER];
  // A relayed request is refused however the proxy marks it: X-Forwarded-For, or RFC 7239's Forwarded.
  const relayed = request.headers['x-forwarded-for'] !== undefined || request.headers.forwarded !== undefined;
  // A browser page never has a reason to call the agent (Origin), and one whose name an attacker rebound to 127.0.0.1 names itself in Host.
  const foreign = request.headers.origin !== undefined || !addressedToAgent(request);
  if (typeof presented !== 'string' || !same(presented, requestToken) || relayed || foreign) return send(401, { error: 'invalid_token' });
  if (request.method !== 'GET') return send(405, { error: 'method_not_allowed' });
  const url = new URL(request.url ?? '/', 'http://agent');
  try {
    if (url.pathname === '/v1/token') {
      const audience = url.searchParams.get('audience');
      if (!audience) return send(400, { error: 'invalid_request' });
      const { token, expiresAt } = await client.token(audience);
      return send(200, { access_token: token, token_type: 'Bearer', expires_in: Math.max(0, Math.floor((expiresAt - Date.now()) / 1000)) });
    }
    if (url.pathname.startsWith('/v1/secrets/')) {
      const name = decoded(url.pathname.slice('/v1/secrets/'.length));
      if (name === undefined) return send(400, { error: 'invalid_name' });
      const value = await client.secret(name);
      return send(200, { secret: value.secret, version: value.version, value: value.value, expiresAt: new Date(value.expiresAt).toISOString() });
    }
    return send(404, { error: 'not_found' });
  } catch (error) {
    if (!(error instanceof RekeyClientError)) return send(500, { error: 'server_error' });
    const status = { unauthenticated: 502, forbidden: 403, not_configured: 404, unavailable: 503, protocol: 502, aborted: 503, invalid_name: 400 }[error.code];
    return send(status, { error: error.code });
  }
}

/**
 * The secrets whose value in the files `change` says was revoked: the version an event revoked,
 * when it is the one rendered (or none was: a file left by an earlier run may hold it), not a
 * previous version revoked after the files moved on to its successor; every secret a `ready`
 * names with no current version (revoked while the stream was down).
 */
function revokedIn(change: SecretChange, rendered: Map<string, number>): string[] {
  if (change.type === 'revoked') return (rendered.get(change.secret) ?? change.version) === change.version ? [change.secret] : [];
  if (change.type === 'ready') return change.secrets.filter((s) => s.version === null).map((s) => s.secret);
  return [];
}

/** Removes a rendered file; 1 when one was there, 0 when none was. */
async function removed(path: string): Promise<number> {
  try {
    await unlink(path);
    return 1;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** Why a template could not be rendered, as a code: the client's, or the file system's errno name (never an error's message). */
function reasonOf(error: unknown): string {
  if (error instanceof RekeyClientError) return error.code;
  const { code } = error as NodeJS.ErrnoException;
  return typeof code === 'string' && /^E[A-Z0-9]{1,15}$/.test(code) ? code : 'error';
}

/** Whether the request's Host names the agent's own address: 127.0.0.1 or localhost, at the port it came in on (Node answers an HTTP/1.1 request with no Host 400 itself). */
function addressedToAgent(request: IncomingMessage): boolean {
  const { host } = request.headers;
  if (host === undefined) return true;
  try {
    const url = new URL(`http://${host}`);
    return (url.hostname === '127.0.0.1' || url.hostname === 'localhost') && Number(url.port || 80) === request.socket.localPort;
  } catch {
    return false;
  }
}

/** The secret name a path's segments spell, or undefined when one is not valid percent-encoding (a caller's mistake, not the agent's). */
function decoded(path: string): string | undefined {
  try {
    return path.split('/').map(decodeURIComponent).join('/');
  } catch {
    return undefined;
  }
}

/** Compares digests of equal length, so the time taken tells nothing of the token, its length included. */
function same(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
