/**
 * The HTTP surface. Every process serves /healthz, /readyz and /metrics; `rekey server`
 * adds the receivers (webhooks, Pub/Sub push, JWKS) registered by feature modules.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';

export type RouteModule = (app: FastifyInstance, runtime: Runtime) => void | Promise<void>;

export async function buildServer(runtime: Runtime, routes: readonly RouteModule[] = []): Promise<FastifyInstance> {
  const app = Fastify({
    // Request lines are info-level; only warnings and errors reach the log.
    loggerInstance: runtime.log.child({ component: 'http' }, { level: 'warn' }),
    bodyLimit: 1024 * 1024,
    trustProxy: trustProxy(runtime.settings.trustProxy),
  }) as unknown as FastifyInstance; // pino's Logger type is wider than fastify's default instance type
  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const checks = await runtime.ready();
    return reply.code(checks.postgres && checks.redis ? 200 : 503).send(checks);
  });
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', runtime.metrics.registry.contentType).send(await runtime.metrics.registry.metrics()),
  );
  for (const register of routes) await register(app, runtime);
  return app;
}

/** fastify takes a hop count as a function of the hop. */
function trustProxy(setting: boolean | number | string[]): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}
