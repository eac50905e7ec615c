/**
 * The HTTP surface. Every process serves /healthz, /readyz and /metrics (or /metrics on a
 * port of its own, REKEY_METRICS_PORT); `rekey server` adds the receivers (webhooks, Pub/Sub
 * push, JWKS) registered by feature modules. /readyz and /metrics answer from a probe taken at
 * most once per PROBE_CACHE_MS, so a flood of them costs PostgreSQL and Redis nothing more.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Runtime } from '../runtime.js';
import { Admission } from './admission.js';

/** What the route modules of one server share. */
export interface HttpShared {
  /** Admission to every route that authenticates its callers (one cap for them all). */
  admission: Admission;
}

export type RouteModule = (app: FastifyInstance, runtime: Runtime, shared: HttpShared) => void | Promise<void>;

/** How long a client may take to send a whole request: a slow body must not hold an admission slot for ever. */
export const REQUEST_TIMEOUT_MS = 15_000;

/**
 * Node's own options for both servers' sockets. fastify's requestTimeout alone did not bound a slow
 * body: Node cuts a request only once headersTimeout (60 s by default) has passed too, and looks
 * at its connections every connectionsCheckingInterval (30 s): a body that never finished held its
 * connection, and its admission slot, for 60 to 90 s.
 */
const NODE_HTTP = { headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 };

/** How long a /readyz probe or a rendered /metrics is answered again before it is taken anew. */
export const PROBE_CACHE_MS = 1000;

/** How often a closing server closes the connections that have gone idle since it began closing. */
const CLOSE_SWEEP_MS = 50;

export interface ServerOptions {
  /** Serve /metrics here; false when it has a port of its own. @defaultValue true */
  metrics?: boolean;
}

export async function buildServer(runtime: Runtime, routes: readonly RouteModule[] = [], options: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // Request lines are info-level; only warnings and errors reach the log.
    loggerInstance: runtime.log.child({ component: 'http' }, { level: 'warn' }),
    bodyLimit: 1024 * 1024,
    // A secret's name (up to 128 characters, each `/` sent as `%2F`) is one path parameter;
    // fastify's default of 100 answered 414 to the longer ones before their route.
    routerOptions: { maxParamLength: 400 },
    requestTimeout: REQUEST_TIMEOUT_MS,
    http: NODE_HTTP,
    trustProxy: trustProxy(runtime.settings.trustProxy),
    // A URL the router cannot take (bad percent-encoding, a segment over maxParamLength) is refused
    // before any route's authentication: fastify's own answer quotes the path, ours only its code.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(error.statusCode ?? 400).send({ error: 'bad request', code: error.code });
    },
  }) as unknown as FastifyInstance; // pino's Logger type is wider than fastify's default instance type
  closeIdleWhileClosing(app);
  app.get('/healthz', () => ({ status: 'ok' }));
  const ready = sharedFor(PROBE_CACHE_MS, () => runtime.ready());
  app.get('/readyz', async (_request, reply) => {
    const checks = await ready();
    return reply.code(checks.postgres && checks.redis ? 200 : 503).send(checks);
  });
  if (options.metrics !== false) serveMetrics(app, runtime);
  const shared: HttpShared = { admission: new Admission() };
  for (const register of routes) await register(app, runtime, shared);
  return app;
}

/** The server of REKEY_METRICS_PORT: /metrics and nothing else. */
export function buildMetricsServer(runtime: Runtime): FastifyInstance {
  const app = Fastify({
    loggerInstance: runtime.log.child({ component: 'http-metrics' }, { level: 'warn' }),
    requestTimeout: REQUEST_TIMEOUT_MS,
    http: NODE_HTTP,
  }) as unknown as FastifyInstance;
  closeIdleWhileClosing(app);
  serveMetrics(app, runtime);
  return app;
}

/**
 * When a server begins closing, Node closes the connections idle at that moment; one whose
 * request was still being answered (or whose stream the close ended) stays open on keep-alive
 * after its answer, for fastify's keepAliveTimeout (72 s), and the close waits for it: a SIGTERM
 * drain took that long, past Kubernetes' grace period. While closing, the connections that have
 * gone idle since are closed too (requests arriving meanwhile are answered 503 with
 * `Connection: close` by fastify).
 */
function closeIdleWhileClosing(app: FastifyInstance): void {
  app.addHook('preClose', (done) => {
    const sweep = setInterval(() => app.server.closeIdleConnections(), CLOSE_SWEEP_MS);
    sweep.unref();
    app.server.once('close', () => clearInterval(sweep));
    done();
  });
}

function serveMetrics(app: FastifyInstance, runtime: Runtime): void {
  const { registry } = runtime.metrics;
  const render = sharedFor(PROBE_CACHE_MS, () => registry.metrics());
  app.get('/metrics', async (_request, reply) => reply.header('content-type', registry.contentType).send(await render()));
}

/**
 * `fn`, run at most once per `ms`: callers while it runs share its answer, and so do callers
 * within `ms` of its end. A rejection is not kept: the next caller runs it again.
 */
export function sharedFor<T>(ms: number, fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let last: { at: number; value: T } | undefined;
  return () => {
    if (last && performance.now() - last.at < ms) return Promise.resolve(last.value);
    return (running ??= fn()
      .then((value) => {
        last = { at: performance.now(), value };
        return value;
      })
      .finally(() => (running = undefined)));
  };
}

/** fastify takes a hop count as a function of the hop. */
function trustProxy(setting: false | number | string[]): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}
