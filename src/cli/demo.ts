/**
 * `npm run demo` (`rekey dev --demo`): rekey's main job end to end on local defaults.
 * A demo API accepts keys through the redis-keyset middleware; a client fetches the
 * current key just in time from the store. rekey rotates the key twice with an
 * overlap window, retires the old key when the window closes, then revokes a key
 * reported leaked. Then an app with no key in it gets a short-lived token through
 * the client library and calls an API through HAProxy, which verifies the token
 * (demo-tokens.ts). The timeline comes from the audit log; the run fails (exit 1)
 * if any promise below does not hold.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import { createKeysetVerifier, keysetAuth } from '../../providers/redis-keyset/index.js';
import { loadConfigFile } from '../config/load.js';
import { ProviderError } from '../core/errors.js';
import { verifyAudit } from '../db/audit-verify.js';
import type { Runtime } from '../runtime.js';
import { applyConfig } from './apply.js';
import { runTokenDemo, TOKEN_SECRETS, tokenDemoConfig } from './demo-tokens.js';
import { AuditTail } from './timeline.js';

const SECRET = 'demo-api-key';
const GRACE_S = 3;
const KEYSET = { keyPrefix: 'rekey-demo:keyset:', channel: 'rekey-demo:keyset' };

/**
 * @param options.inspect how a second terminal reaches the demo's state, printed at the end.
 * @param options.serverUrl the `rekey server` the keyless app asks for its token.
 */
export async function runDemo(runtime: Runtime, options: { out: (text: string) => void; notes: string[]; started: number; inspect: string; serverUrl: string }): Promise<boolean> {
  const { out } = options;
  const t0 = options.started;
  const stamp = (at = Date.now()) => `+${((at - t0) / 1000).toFixed(2)}s`.padStart(8);
  const failures: string[] = [];
  const expect = (ok: boolean, what: string) => {
    line(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures.push(what);
  };
  const line = (text: string, at?: number) => out(`${stamp(at)}  ${text}`);

  out('rekey demo: rotate an API key with an overlap window, retire the old key, revoke a leaked one; an app with no key gets a token\n');
  for (const note of options.notes) out(`  ${note}`);

  const verifier = await createKeysetVerifier({ redisUrl: runtime.settings.redisUrl, fingerprintKey: runtime.settings.fingerprintKey!, keyset: SECRET, ...KEYSET });
  const api = Fastify();
  api.addHook('onRequest', keysetAuth(verifier));
  api.get('/payments', (request) => ({ ok: true, consumer: (request as unknown as { consumer: string }).consumer }));
  const apiUrl = await api.listen({ host: '127.0.0.1', port: 0 });
  out(`  demo API: ${apiUrl}/payments, guarded by the redis-keyset middleware\n`);

  const file = join(process.cwd(), '.rekey', 'demo.yaml');
  await writeFile(file, demoConfig(`${apiUrl}/payments`));
  await applyConfig(runtime, await loadConfigFile(file, runtime.modules), { file, actor: 'demo', out: (text) => out(text.replace(/^/gm, '  ')) });
  out('\ntimeline (from the audit log, plus what the client saw)');

  const tail = new AuditTail(runtime.db, (at) => stamp(at.getTime()).trim());
  await tail.start();
  const flush = async () => {
    for (const event of await tail.lines()) line(event.text, event.at.getTime());
  };
  const call = async (key: string) => (await fetch(`${apiUrl}/payments`, { headers: { 'x-api-key': key } })).status;
  const { store } = await runtime.resolver.resolve(SECRET);
  const currentKey = async () => (await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(5000) })).reveal();

  const foreign = await unreadable(runtime, [SECRET, ...TOKEN_SECRETS]);
  const otherAuditKey = await runtime.db.auditEvent.findFirst({ where: { keyId: { not: runtime.audit.keyId() } }, select: { seq: true } });
  if (foreign.length || otherAuditKey) {
    const database = new URL(runtime.settings.databaseUrl).pathname.slice(1);
    const what = [foreign.length ? `${foreign.join(', ')} cannot be read here` : '', otherAuditKey ? 'its audit log will not verify' : ''].filter(Boolean).join(' and ');
    out(`  demo: database ${database} was written with another checkout's keys (.rekey/dev-keys.json): ${what}; \`dropdb ${database}\` starts clean\n`);
  }

  try {
    await rotate(runtime, flush, [SECRET, ...TOKEN_SECRETS]);
    const first = await currentKey();
    line(`client fetched the current key just in time from the store: ${first.slice(0, 12)}…`);
    expect((await call(first)) === 200, 'the API accepts the current key');

    const beforeSecond = Date.now();
    await rotate(runtime, flush);
    const second = await currentKey();
    line(`client fetched the new key: ${second.slice(0, 12)}…`);
    expect((await call(second)) === 200, 'the API accepts the new key');
    expect((await call(first)) === 200, `the API still accepts the old key during the ${GRACE_S}s overlap`);

    const closed = await until(async () => (await call(first)) === 401, (GRACE_S + 10) * 1000, flush);
    await flush();
    expect(closed, `the old key is rejected once the overlap closed (${((Date.now() - beforeSecond) / 1000).toFixed(1)}s after the rotation)`);
    expect((await call(second)) === 200, 'the current key keeps working');

    line('a scanner reports the current key leaked (rekey revoke --version N takes the same path as a webhook)');
    const leaked = await runtime.db.version.findFirstOrThrow({ where: { secret: { name: SECRET }, state: 'current' } });
    const reported = Date.now();
    await runtime.engine.revoke(SECRET, leaked.number);
    const blocked = await until(async () => (await call(second)) === 401, 15_000, flush);
    const blockedMs = Date.now() - reported;
    // Done when the leaked version is revoked at the issuer (the revocation runs after its emergency rotation) and no run is left.
    const settled = async () =>
      (await runtime.db.version.count({ where: { id: leaked.id, state: 'revoked' } })) === 1 &&
      (await runtime.db.run.count({ where: { status: 'running', secret: { name: SECRET } } })) === 0;
    const revoked = await until(settled, 10_000, flush);
    await flush();
    expect(blocked, `the leaked key is rejected ${blockedMs} ms after the report`);
    expect(revoked, 'the leaked key is revoked at its issuer');
    const third = await currentKey();
    expect((await call(third)) === 200, 'the replacement key works');

    await runTokenDemo(runtime, { serverUrl: options.serverUrl, dir: join(process.cwd(), '.rekey'), line, expect });
    await flush();

    const audit = await verifyAudit(runtime.db, runtime.audit);
    expect(audit.ok, `audit log: ${audit.events} events, hash chain verified`);
  } finally {
    await api.close();
    await verifier.close();
  }
  out(failures.length ? `\ndemo FAILED: ${failures.join('; ')}` : `\ndemo passed in ${((Date.now() - t0) / 1000).toFixed(1)}s. Config: ${file}.\n${options.inspect}`);
  return failures.length === 0;
}

/** The secrets of `names` whose current value exists but cannot be read here (a value sealed under another key). */
async function unreadable(runtime: Runtime, names: string[]): Promise<string[]> {
  const found = await Promise.all(
    names.map(async (name) => {
      const { store } = await runtime.resolver.resolve(name);
      return store.read({ stage: 'current' }, { signal: AbortSignal.timeout(5000) }).then(
        () => undefined,
        (error: unknown) => (error instanceof ProviderError && error.code === 'REKEY_ERR_INVALID' ? name : undefined),
      );
    }),
  );
  return found.filter((name): name is string => name !== undefined);
}

/** Rotates `secrets` at once and waits for every run to finish. */
async function rotate(runtime: Runtime, flush: () => Promise<void>, secrets = [SECRET]): Promise<void> {
  const results = await Promise.all(secrets.map((secret) => runtime.engine.requestRotation({ secret, trigger: 'manual' })));
  const runs = results.flatMap((result) => (result.status === 'stale' ? [] : [result.run.id]));
  const finished = async () => (await Promise.all(runs.map((id) => runtime.engine.deps.repo.getRun(id)))).every((run) => run?.status !== 'running');
  const done = await until(finished, 30_000, flush);
  await flush();
  if (!done) throw new Error(`rotations ${runs.join(', ')} did not finish in 30 s`);
}

async function until(predicate: () => Promise<boolean>, timeoutMs: number, tick: () => Promise<void>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await tick();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return predicate();
}

function demoConfig(probeUrl: string): string {
  return `# Written by the demo (rekey dev --demo). A real config looks the same.
providers:
  vault:
    type: local                       # values sealed with AES-256-GCM in PostgreSQL
  gateway:
    type: redis-keyset                # the demo API checks keys against this keyset
    keyPrefix: "${KEYSET.keyPrefix}"
    channel: ${KEYSET.channel}
    probe: { url: ${probeUrl}, header: X-Api-Key }
secrets:
  ${SECRET}:
    description: API key of the demo payments API
    store: { provider: vault }
    issuer: { type: random, prefix: rk_demo_ }
    targets: [gateway]
    grace: ${GRACE_S}s                          # the old key stays accepted this long
    onLeak: rotate-then-revoke
    leakDeadline: 10s
${tokenDemoConfig.secrets}${tokenDemoConfig.delivery}`;
}
