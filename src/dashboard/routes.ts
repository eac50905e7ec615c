/**
 * The dashboard as a RouteModule of `rekey server`: its page and assets under /ui, and its
 * session under /ui/session. Everything it shows and does goes through the admin API
 * (/api/v1), which accepts the session cookie as it accepts a bearer token (src/api/auth.ts).
 *
 *   POST   /ui/session  `Authorization: Bearer rkadm_...` → a session cookie (the token stays
 *                       in the sign-in form); answers the caller, the session's CSRF token,
 *                       its end (expiresAt) and how long it lasts idle (idleMs)
 *   GET    /ui/session  the same of the session (401 when there is none)
 *   DELETE /ui/session  signs out (CSRF token required): 204, or for a person signed in with a
 *                       provider that offers RP-initiated logout, `{ endSession }`: where the
 *                       browser goes next to end the provider's session too
 *   GET    /ui/oidc     where sign-in with the configured OpenID Connect provider starts (or null)
 *   GET    /ui/oidc/start, /ui/oidc/callback   that sign-in (src/dashboard/oidc.ts): a session
 *                       like a token's, its actor `oidc:<issuer>#<subject>` (src/api/actors.ts)
 *
 * The session routes are authenticated by the API's own Authenticator, with the admission
 * the other receivers share: failed sign-ins are counted per source like any failed token.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { personActor } from '../api/actors.js';
import { ADMISSION_PROBLEMS, Authenticator } from '../api/auth.js';
import { sendProblem } from '../api/problems.js';
import { answerError } from '../api/routes.js';
import { csrfToken, type Session, SESSION_IDLE_MS, sessionsOf } from '../api/sessions.js';
import type { Caller } from '../api/route.js';
import type { RouteModule } from '../http/server.js';
import { isRefusal } from '../http/admission.js';
import { RateLimiter, sourceOf } from '../http/rate-limit.js';
import { type Asset, loadAssets, SECURITY_HEADERS, STRICT_TRANSPORT_SECURITY } from './assets.js';
import { OidcSignIn, type Refusal } from './oidc.js';

export const UI_PREFIX = '/ui';

/**
 * Sign-ins one source address may start per minute. A start is unauthenticated and keeps its
 * flow in Redis (shared with the job queues) until its callback or FLOW_TTL_MS: unbounded, a
 * flood of starts would fill Redis. People start a handful; a busy office behind one address, a few dozen an hour.
 */
export const SIGN_IN_STARTS = { max: 20, windowMs: 60_000 };

export const dashboardRoutes: RouteModule = async (app: FastifyInstance, runtime, { admission }) => {
  const assets = loadAssets();
  const sessions = sessionsOf(runtime);
  const auth = new Authenticator(runtime.db, admission, sessions);
  const log = runtime.log.child({ component: 'dashboard' });
  const oidc = new OidcSignIn(runtime, sessions);
  const audited = (actor: string, action: string, data: Record<string, string | string[]>) => runtime.db.$transaction((tx) => runtime.audit.append(tx, { actor, action, data }));
  const answer = (reply: FastifyReply, caller: Caller, session: Session) =>
    reply.header('cache-control', 'no-store').send({ name: caller.principal.name, scopes: caller.principal.scopes, csrfToken: csrfToken(session.id), expiresAt: session.expiresAt.toISOString(), idleMs: SESSION_IDLE_MS });

  await app.register(
    (ui, _options, done) => {
      ui.addHook('onSend', (_request, reply, payload, next) => {
        reply.headers(SECURITY_HEADERS);
        if (sessions.secureCookie) reply.header('strict-transport-security', STRICT_TRANSPORT_SECURITY);
        next(null, payload);
      });
      // Here, not fastify's default: that one would answer without the headers above, and echo the path.
      // Its error handler too: that one logged the request's URL, a sign-in's code and state with it, and answered the error's message.
      ui.setErrorHandler((error: Error, _request, reply) => answerError(error, reply, runtime, log));
      ui.setNotFoundHandler((_request, reply) => sendProblem(reply, 'REKEY_API_NOT_FOUND', 'no dashboard page or route at this path'));
      const page = (reply: FastifyReply, asset: Asset | undefined) => {
        if (!asset) return reply.code(assets.size ? 404 : 503).type('text/plain; charset=utf-8').send(assets.size ? 'not found' : 'the dashboard is not built: run `npm run build:ui`');
        return reply.header('cache-control', 'no-cache').header('etag', asset.etag).type(asset.type).send(asset.body);
      };
      ui.get('/', (_request, reply) => page(reply, assets.get('index.html')));
      ui.get('/assets/*', (request, reply) => page(reply, assets.get(`assets/${(request.params as { '*': string })['*']}`)));

      ui.get('/oidc', async (_request, reply) => reply.header('cache-control', 'no-store').send({ start: (await oidc.config()) ? `${UI_PREFIX}/oidc/start` : null }));
      const starts = new RateLimiter(SIGN_IN_STARTS);
      ui.get('/oidc/start', async (request, reply) => {
        if (!starts.take(sourceOf(request.ip))) return sendProblem(reply.header('retry-after', String(starts.retryAfterSeconds())), 'REKEY_API_TOO_MANY_SIGN_INS');
        const config = await oidc.config();
        return config ? oidc.start(config, request, reply) : sendProblem(reply, 'REKEY_API_NOT_FOUND', 'no dashboard.oidc in the applied config');
      });
      ui.get('/oidc/callback', async (request, reply) => {
        const admitted = admission.enter(request.ip, reply.raw);
        if (isRefusal(admitted)) return sendProblem(reply.header('retry-after', String(admitted.retryAfter)), ADMISSION_PROBLEMS[admitted.reason]);
        try {
          const config = await oidc.config();
          if (!config) return sendProblem(reply, 'REKEY_API_NOT_FOUND', 'no dashboard.oidc in the applied config');
          oidc.clearFlow(reply.header('cache-control', 'no-store'));
          const refuse = (reason: Refusal, subject?: string) => {
            admission.failed(request.ip);
            log.info({ reason, subject }, 'OIDC sign-in refused');
            return reply.redirect(`${UI_PREFIX}/?signin=${reason}`, 303);
          };
          const person = await oidc.finish(config, request);
          if ('refused' in person) return refuse(person.refused);
          if (!(await sessions.scopesOf(person)).length) {
            await audited(personActor(person), 'dashboard.signInRefused', { reason: 'no_scope', groups: person.groups.slice(0, 50) });
            return refuse('no_scope', person.subject);
          }
          admission.succeeded(request.ip);
          const created = await sessions.create({ person }, request.headers.cookie);
          await audited(personActor(person), 'dashboard.signedIn', { expiresAt: created.expiresAt.toISOString(), groups: person.groups.slice(0, 50) });
          return reply.header('set-cookie', sessions.cookie(created)).redirect(`${UI_PREFIX}/`, 303);
        } finally {
          admitted.release();
        }
      });

      ui.register(
        (session, _o, registered) => {
          session.addHook('onRequest', auth.hook);
          session.post('/session', async (request, reply) => {
            const caller = auth.caller(request);
            if (caller.session) return sendProblem(reply, 'REKEY_API_INVALID_REQUEST', 'sign in with Authorization: Bearer <token>');
            const created = await sessions.create({ tokenId: caller.principal.id }, request.headers.cookie);
            await audited(caller.actor, 'dashboard.signedIn', { expiresAt: created.expiresAt.toISOString() });
            return answer(reply.header('set-cookie', sessions.cookie(created)), caller, created);
          });
          session.get('/session', (request, reply) => {
            const caller = auth.caller(request);
            if (!caller.session) return sendProblem(reply, 'REKEY_API_NOT_FOUND', 'no dashboard session: this request used a bearer token');
            return answer(reply, caller, caller.session);
          });
          session.delete('/session', async (request, reply) => {
            const caller = auth.caller(request);
            if (!caller.session) return sendProblem(reply, 'REKEY_API_NOT_FOUND', 'no dashboard session: this request used a bearer token');
            await sessions.end(caller.session.id);
            await audited(caller.actor, 'dashboard.signedOut', { expiresAt: caller.session.expiresAt.toISOString() });
            reply.header('set-cookie', sessions.clearCookie()).header('cache-control', 'no-store');
            const config = 'person' in caller.session ? await oidc.config() : undefined;
            const endSession = config && (await oidc.endSessionUrl(config));
            return endSession ? reply.send({ endSession }) : reply.code(204).send();
          });
          registered();
        },
      );
      done();
    },
    { prefix: UI_PREFIX },
  );
};
