/**
 * What the JWKS documents (served, and sent to `publish: jwks` targets) may carry.
 *
 * A previous signing key leaves the JWKS when its grace ends, not when its retirement runs: the
 * retirement is a delayed job, and a backlog or workers that are down would otherwise keep a key
 * past its grace in the served document and in what a `publish: jwks` target receives. No token
 * it signed outlives its grace (token-exchange.ts), so nothing valid depends on it.
 * The grace end is moved into the past by hand: the retirement job, due in an hour, never runs.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Issuer, JsonObject } from '../../src/core/ports.js';
import { buildServer } from '../../src/http/server.js';
import type { Runtime } from '../../src/runtime.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { liveKeys } from '../../src/jwks/target.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { Harness } from '../support/harness.js';
import { startJwksHarness } from '../support/jwks.js';
import type { Journal } from '../support/memory-provider.js';

let h: Harness;
let pushed: Journal;

beforeAll(async () => {
  ({ h, pushed } = await startJwksHarness('jwks-grace-end', { grace: '1h', secret: 'grace-signing' }));
  for (let i = 0; i < 2; i++) expect((await h.rotate('grace-signing', 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h?.stop());

const kids = async (path: string) => ((await (await fetch(`${h.serving!.url}${path}`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

it('drops a previous key from the served and the published JWKS once its grace has ended, before its retirement runs', async () => {
  const versions = await h.runtime.db.version.findMany({ where: { secret: { name: 'grace-signing' } }, orderBy: { number: 'asc' } });
  const [first, second] = versions;
  expect([first!.state, second!.state]).toEqual(['previous', 'current']);
  expect(await kids('/.well-known/jwks.json')).toEqual([second!.id, first!.id]);

  await h.runtime.db.version.update({ where: { id: first!.id }, data: { graceEndsAt: new Date(Date.now() - 1000) } });
  expect((await h.runtime.db.version.findUniqueOrThrow({ where: { id: first!.id } })).state).toBe('previous'); // not retired yet
  expect(await kids('/.well-known/jwks.json')).toEqual([second!.id]);
  expect(await kids('/.well-known/jwks/grace-signing.json')).toEqual([second!.id]);

  // What a publish: jwks target is sent at its next deploy (a drift repair, the next rotation's).
  const target = (await h.runtime.resolver.resolve('grace-signing')).targets.get('verifiers')!;
  const ref = { secret: 'grace-signing', versionId: second!.id, number: second!.number, fingerprint: second!.fingerprint!, consumer: 'grace-signing' };
  await target.deploy(ref, SecretValue.of('ignored: the target is sent the JWKS'), { signal: AbortSignal.timeout(5000) });
  expect((JSON.parse(pushed.deployedValues.at(-1)!) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid)).toEqual([second!.id]);
});

it('never publishes private members, whatever an issuer returns, nor a symmetric key', async () => {
  const [current] = await h.runtime.db.version.findMany({ where: { secret: { name: 'grace-signing' }, state: 'current' } });
  // An issuer (another provider's, a future one) whose publicKey() hands out its private JWK.
  const careless = (extra: JsonObject) => (_secret: string) =>
    Promise.resolve({ publicKey: (state: JsonObject) => ({ ...(state.publicJwk as JsonObject), d: 'PRIVATE-d', p: 'PRIVATE-p', q: 'PRIVATE-q', dp: 'x', dq: 'x', qi: 'x', ...extra }) } as unknown as Issuer);
  const keys = await liveKeys(h.runtime.db, careless({}), { secret: 'grace-signing' });
  expect(keys).toHaveLength(1);
  expect(keys[0]).toMatchObject({ kid: current!.id, kty: 'EC', crv: 'P-256' });
  expect(Object.keys(keys[0]!).filter((member) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'].includes(member))).toEqual([]);
  // An oct key is its secret: it has no public part, so it is left out whole.
  expect(await liveKeys(h.runtime.db, careless({ kty: 'oct', k: 'SYMMETRIC' }), { secret: 'grace-signing' })).toEqual([]);
});

it('a flood of JWKS requests shares one read per document, each begun after the requests it answers arrived', async () => {
  // The route's own view of the runtime, so the workers' lookups are not counted: each read of the keys asks for each secret's issuer once.
  let reads = 0;
  let firstReached!: () => void;
  const reached = new Promise<void>((resolve) => (firstReached = resolve));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // The applied config, read once before the flood: the resolver reads it again from PostgreSQL
  // when its copy is older than refreshMs (a loaded machine), and a handler that waited for that
  // read asked for the keys after the held read was released, costing a read of its own (CI,
  // 2026-12-07: 4 reads; 6 with a 50 ms config read). Counting reads is about the keys, not the config.
  const config = await h.runtime.resolver.config();
  const resolver = {
    config: () => Promise.resolve(config),
    resolve: async (name: string) => {
      if (name !== 'grace-signing') return h.runtime.resolver.resolve(name);
      reads += 1;
      if (reads === 1) {
        firstReached();
        await gate;
      }
      return h.runtime.resolver.resolve(name);
    },
  };
  const runtime: Runtime = new Proxy(h.runtime, { get: (target, property): unknown => (property === 'resolver' ? resolver : Reflect.get(target, property)) });
  const app = await buildServer(runtime, [jwksRoutes], { metrics: false });
  const N = 60;
  let arrivals = 0;
  let allArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  app.addHook('preHandler', (_request, _reply, done) => {
    if (++arrivals === N + 1) allArrived();
    done();
  });
  await app.ready();
  try {
    const live = (await liveKeys(h.runtime.db, (name) => h.runtime.resolver.resolve(name).then((r) => r.issuer))).map((k) => k.kid);
    expect(live.length).toBeGreaterThan(0);
    const first = app.inject({ url: '/.well-known/jwks.json' });
    await reached; // its read is under way (held)
    // Whole documents, this secret's, and secret names an attacker made up (answered without a read).
    const paths = Array.from({ length: N }, (_, i) => (i % 3 === 0 ? '/.well-known/jwks.json' : i % 3 === 1 ? '/.well-known/jwks/grace-signing.json' : `/.well-known/jwks/made-up-${i}.json`));
    const rest = paths.map((url) => app.inject({ url }));
    await arrived;
    // Past the hooks, each handler asks for the keys before yielding: one turn of the event loop lets them all.
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const answers = await Promise.all([first, ...rest]);
    expect(answers.map((a) => a.statusCode)).toEqual(Array(N + 1).fill(200));
    const kids = answers.map((a) => (a.json<{ keys: Array<{ kid: string }> }>().keys.map((k) => k.kid)));
    expect(kids.slice(1).filter((_, i) => i % 3 !== 2)).toEqual(Array(40).fill(live));
    expect(kids.slice(1).filter((_, i) => i % 3 === 2)).toEqual(Array(20).fill([]));
    // The held read, one more for the whole documents that arrived while it ran, one for the secret's own (not one per request).
    expect(reads).toBe(3);
  } finally {
    release();
    await app.close();
  }
});
