/**
 * Dashboard sign-in with an OpenID Connect provider (`dashboard.oidc` in rekey.yaml): the
 * authorization code flow with PKCE (S256), state and nonce, rekey being the client.
 *
 *   GET /ui/oidc/start     a new flow: state, nonce and code verifier are random; Redis keeps
 *                          the flow under the SHA-256 of its state for FLOW_TTL_MS (nonce and
 *                          verifier: they sign nobody in without the provider's code; and the
 *                          SHA-256 of the session the browser presented, if any), and the
 *                          browser gets the state in a flow cookie (HttpOnly, SameSite=Lax: the
 *                          provider's redirect back is a cross-site navigation), then a redirect
 *                          to the provider's authorization endpoint.
 *   GET /ui/oidc/callback  the provider's answer: the state must be the flow cookie's and a flow
 *                          Redis still holds (taken once: GETDEL), which ends the session the
 *                          browser presented at the start, whatever follows; the code is exchanged with the
 *                          verifier at the token endpoint, the ID token verified (signature by a
 *                          key of the provider's JWKS, asymmetric algorithms only, iss, aud, exp,
 *                          iat within the flow's lifetime (60 s of clock skew either way),
 *                          azp (this client when present; required with several audiences),
 *                          the flow's nonce), the groups claim mapped to scopes; then a session
 *                          exactly like a token's (src/api/sessions.ts), and back to /ui/.
 *
 * Signing out (DELETE /ui/session) ends rekey's session first; when the provider's discovery
 * document has an `end_session_endpoint`, the answer also names it (OpenID Connect RP-Initiated
 * Logout 1.0: `client_id` and `post_logout_redirect_uri` = `<redirectUri's origin>/ui/`, which
 * must be registered with the provider), and the dashboard sends the browser there to end the
 * provider's session too.
 *
 * Every refusal sends the browser to `/ui/?signin=<reason>` (state, provider, exchange,
 * id_token, no_scope) with no session, is logged with its reason, and counts as a failed
 * authentication of the source (src/http/admission.ts). Nothing logs a code, token or claim
 * value other than the subject.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { readCredential } from '../config/environment.js';
import type { OidcSignInConfig } from '../config/dashboard.js';
import { describeError } from '../core/errors.js';
import { jwtRefusalReason } from '../core/kit/jwt-errors.js';
import { outboundUrlProblem } from '../core/kit/outbound-url.js';
import type { Person, Sessions } from '../api/sessions.js';
import type { Runtime } from '../runtime.js';

/** A sign-in must come back from the provider within this. */
export const FLOW_TTL_MS = 10 * 60_000;

/** How far the provider's clock may be from ours when the ID token's iat and exp are checked. */
const CLOCK_SKEW_S = 60;

/** Algorithms an ID token may be signed with: never `none`, never HMAC (its key is the client secret). */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export type Refusal = 'state' | 'provider' | 'exchange' | 'id_token' | 'no_scope';

interface Flow {
  nonce: string;
  verifier: string;
  /** The SHA-256 of the session the browser presented at the start, ended when the flow comes back. */
  previous?: string;
}

interface Discovered {
  authorization: string;
  token: string;
  keys: ReturnType<typeof createRemoteJWKSet>;
  /** RP-initiated logout, when the provider offers it. */
  endSession: string | undefined;
}

const random = () => randomBytes(32).toString('base64url');
const sha256 = (text: string) => createHash('sha256').update(text).digest();

export class OidcSignIn {
  private discovered: { issuer: string; at: number; value: Promise<Discovered> } | undefined;

  constructor(
    private readonly runtime: Runtime,
    private readonly sessions: Sessions,
  ) {}

  /** The applied config's `dashboard.oidc`, if any. */
  config(): Promise<OidcSignInConfig | undefined> {
    return this.runtime.applied('dashboard').then((section) => section?.oidc);
  }

  private get flowCookieName(): string {
    return this.sessions.secureCookie ? '__Host-rekey_oidc' : 'rekey_oidc';
  }

  private flowCookie(value: string, maxAge: number): string {
    return `${this.flowCookieName}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${this.sessions.secureCookie ? '; Secure' : ''}`;
  }

  private flowKey(state: string): string {
    return `${this.runtime.settings.queuePrefix}:oidc-flow:${sha256(state).toString('hex')}`;
  }

  /**
   * Starts a flow: answers the redirect to the provider. The session the browser presents now
   * (same-site: its SameSite=Strict cookie comes along) is noted in the flow, to end when the
   * flow comes back: the provider's redirect back is cross-site and carries no such cookie.
   */
  async start(config: OidcSignInConfig, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const provider = await this.discover(config);
    const previous = this.sessions.idFrom(request.headers.cookie);
    const flow: Flow = { nonce: random(), verifier: random(), ...(previous ? { previous: this.sessions.hashOf(previous) } : {}) };
    const state = random();
    await this.runtime.redis.set(this.flowKey(state), JSON.stringify(flow), 'PX', FLOW_TTL_MS);
    const url = new URL(provider.authorization);
    const scopes = new Set(['openid', ...config.scopes]);
    for (const [name, value] of Object.entries({
      response_type: 'code',
      client_id: config.clientId,
      redirect_uri: config.redirectUri,
      scope: [...scopes].join(' '),
      state,
      nonce: flow.nonce,
      code_challenge: sha256(flow.verifier).toString('base64url'),
      code_challenge_method: 'S256',
    })) url.searchParams.set(name, value);
    return reply.header('set-cookie', this.flowCookie(state, FLOW_TTL_MS / 1000)).header('cache-control', 'no-store').redirect(url.href, 303);
  }

  /**
   * Finishes a flow from the provider's redirect: the person, or why not (their scopes are
   * the caller's to check). The caller clears the flow cookie either way.
   */
  async finish(config: OidcSignInConfig, request: FastifyRequest): Promise<Person | { refused: Exclude<Refusal, 'no_scope'> }> {
    const query = request.query as Record<string, unknown>;
    const state = typeof query.state === 'string' ? query.state : '';
    const cookie = this.sessions.cookieValue(request.headers.cookie, this.flowCookieName) ?? '';
    if (!state || !sameText(state, cookie)) return { refused: 'state' };
    const stored = await this.runtime.redis.getdel(this.flowKey(state));
    if (!stored) return { refused: 'state' };
    const flow = JSON.parse(stored) as Flow;
    // This browser's sign-in came back, whatever its outcome: the session it held when it started
    // ends (one person's session must not outlive another's sign-in on a shared browser, nor a
    // copy of its id the new sign-in).
    if (flow.previous) await this.sessions.endHashed(flow.previous);
    if (typeof query.code !== 'string' || !query.code) return { refused: 'provider' }; // error=access_denied and the like

    let provider: Discovered;
    let idToken: string | undefined;
    try {
      provider = await this.discover(config);
      idToken = await this.exchange(config, provider, query.code, flow.verifier);
    } catch (error) {
      // The provider could not be reached: a refusal like the others. Thrown on, fastify would log the request's URL, code and all.
      this.runtime.log.warn({ component: 'dashboard', error: describeError(error) }, 'OIDC code exchange failed');
      return { refused: 'exchange' };
    }
    if (!idToken) return { refused: 'exchange' };
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(idToken, provider.keys, {
        issuer: config.issuer,
        audience: config.clientId,
        algorithms: ALGORITHMS,
        requiredClaims: ['exp', 'iat', 'sub', 'nonce'],
        // Issued during a sign-in, which lasts FLOW_TTL_MS at most: no older than that, not in the future (CLOCK_SKEW_S either way).
        maxTokenAge: FLOW_TTL_MS / 1000,
        clockTolerance: CLOCK_SKEW_S,
      }));
    } catch (error) {
      this.runtime.log.info({ component: 'dashboard', reason: jwtRefusalReason(error) }, 'OIDC ID token refused');
      return { refused: 'id_token' };
    }
    // OpenID Connect Core 3.1.3.7: a token for several audiences must name the party it was issued to (azp), and that must be rekey.
    const audiences = [claims.aud].flat();
    if (claims.azp !== undefined ? claims.azp !== config.clientId : audiences.length > 1) {
      this.runtime.log.info({ component: 'dashboard', reason: 'claim azp' }, 'OIDC ID token refused');
      return { refused: 'id_token' };
    }
    if (typeof claims.nonce !== 'string' || !sameText(claims.nonce, flow.nonce)) return { refused: 'id_token' };
    const subject = claims.sub!;
    const raw = claims[config.groupsClaim];
    const groups = (Array.isArray(raw) ? raw : [raw]).filter((g): g is string => typeof g === 'string');
    const name = [claims.preferred_username, claims.name, claims.email].find((n): n is string => typeof n === 'string' && n.length > 0) ?? subject;
    return { issuer: config.issuer, subject, name: name.slice(0, 200), groups };
  }

  /**
   * Where to send the browser to end the provider's session too (RP-initiated logout), or
   * undefined when the provider offers none or cannot be reached (rekey's session is over anyway).
   */
  async endSessionUrl(config: OidcSignInConfig): Promise<string | undefined> {
    const provider = await this.discover(config).catch(() => undefined);
    if (!provider?.endSession) return undefined;
    const url = new URL(provider.endSession);
    url.searchParams.set('client_id', config.clientId);
    url.searchParams.set('post_logout_redirect_uri', new URL('/ui/', config.redirectUri).href);
    return url.href;
  }

  /** Clears the flow cookie. */
  clearFlow(reply: FastifyReply): FastifyReply {
    return reply.header('set-cookie', this.flowCookie('', 0));
  }

  /** The ID token for `code`, or undefined when the provider refuses the exchange. */
  private async exchange(config: OidcSignInConfig, provider: Discovered, code: string, verifier: string): Promise<string | undefined> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: config.redirectUri, code_verifier: verifier, client_id: config.clientId });
    if (config.clientSecret) {
      const secret = readCredential(config.clientSecret, process.env, 'dashboard.oidc.clientSecret').reveal();
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(config.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    }
    const response = await fetch(provider.token, { method: 'POST', headers, body: form, redirect: 'error', signal: AbortSignal.timeout(10_000) });
    const body = (await response.json().catch(() => ({}))) as { id_token?: unknown; error?: unknown };
    if (!response.ok || typeof body.id_token !== 'string') {
      this.runtime.log.info({ component: 'dashboard', status: response.status, error: typeof body.error === 'string' ? body.error.slice(0, 64) : undefined }, 'OIDC code exchange refused');
      return undefined;
    }
    return body.id_token;
  }

  /** The provider's endpoints and keys from its discovery document, cached for ten minutes. */
  private discover(config: OidcSignInConfig): Promise<Discovered> {
    const cached = this.discovered;
    if (cached && cached.issuer === config.issuer && Date.now() - cached.at < 600_000) return cached.value;
    const value = readDiscovery(config).catch((error: unknown) => {
      this.discovered = undefined;
      throw error;
    });
    this.discovered = { issuer: config.issuer, at: Date.now(), value };
    return value;
  }
}

async function readDiscovery(config: OidcSignInConfig): Promise<Discovered> {
  const response = await fetch(`${config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`the OIDC discovery document answered ${response.status}`);
  const document = (await response.json()) as Record<string, unknown>;
  if (document.issuer !== config.issuer) throw new Error('the OIDC discovery document names another issuer');
  const urls = ['authorization_endpoint', 'token_endpoint', 'jwks_uri'].map((field) => {
    const text = document[field];
    const url = typeof text === 'string' && URL.canParse(text) ? new URL(text) : undefined;
    if (!url || outboundUrlProblem(url, config.insecure)) throw new Error(`the OIDC discovery document's ${field} is missing or may not be used`);
    return url;
  });
  // Optional: a provider without RP-initiated logout (or with an address rekey may not send people to) ends only rekey's session.
  const end = document.end_session_endpoint;
  const endSession = typeof end === 'string' && URL.canParse(end) && !outboundUrlProblem(new URL(end), config.insecure) ? new URL(end).href : undefined;
  return {
    authorization: urls[0]!.href,
    token: urls[1]!.href,
    keys: createRemoteJWKSet(urls[2]!, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 }),
    endSession,
  };
}

/** Constant-time equality of two strings. */
function sameText(a: string, b: string): boolean {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
}
