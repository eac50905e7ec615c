/**
 * `rekey agent` told a secret its templates render was revoked (a block-first leak), while no
 * replacement can be fetched (the issuer fails to issue one), does not leave the revoked value in
 * the rendered files: `--on-revoke blank` (the default) rewrites the file 0600 with that value's
 * place empty, `remove` deletes it, `keep` leaves it (asked for). The process is signalled as on a
 * change. Before, the agent dropped the value from memory but the file held it for as long as no
 * replacement came (found by the review of the agent, finding 8).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type Agent, type AgentLogEvent, type OnRevoke } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { REQUEST_TOKEN } from '../support/agent.js';
import { ACCESS_TOKEN_TYPE, storedValue } from '../support/delivery.js';
import { killOnExit } from '../support/gateways/process.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const J = `agent-revoked-${randomUUID()}`;
const j = journal(J);
let h: Harness;
let dir: string;
const agents = new Map<OnRevoke, { agent: Agent; logs: AgentLogEvent[]; file: string }>();
/** The app the `blank` agent signals: prints `HUP` on SIGHUP. */
const app = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => process.stdout.write('HUP\\n')); process.stdout.write('ready\\n'); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'inherit'] });
killOnExit(app);
let hups = 0;
let heard: () => void = () => {};
app.stdout.on('data', (chunk: Buffer) => {
  hups += chunk.toString().split('HUP').length - 1;
  heard();
});

beforeAll(async () => {
  await new Promise<void>((resolve) => (heard = resolve)); // the app listens for SIGHUP
  h = await startHarness({ label: 'agent-revoked', routes: [deliveryRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
  mem: { type: memory, journal: ${J} }
secrets:
  workloads:
    clients: [orders]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_wl_ }
    grace: 1h
  db-password: { store: { provider: mem }, issuer: { provider: mem }, grace: 1h, onLeak: block-first, retry: { attempts: 2, backoff: 50ms } }
  api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_api_ }, grace: 1h }
delivery:
  issuer: https://rekey.test
  authenticators:
    workloads: { type: client-key, secret: workloads }
  grants:
    db: { authenticator: workloads, subjects: ["workloads/orders"], value: { secret: db-password, ttl: 5m } }
    api: { authenticator: workloads, subjects: ["workloads/orders"], value: { secret: api-key, ttl: 5m } }
  rateLimit: { max: 1000, window: 1m }
`);
  for (const secret of ['workloads/orders', 'db-password', 'api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-revoked-'));
  const keyFile = join(dir, 'client-key');
  await writeFile(keyFile, await storedValue(h, 'workloads/orders'), { mode: 0o600 });
  await writeFile(join(dir, 'app.tmpl'), 'DB_PASSWORD={{ secret "db-password" }}\nAPI_KEY={{ secret "api-key" }}\n');
  for (const onRevoke of ['blank', 'remove', 'keep'] as const) {
    const file = join(dir, `${onRevoke}.env`);
    const logs: AgentLogEvent[] = [];
    const agent = await startAgent({
      server: h.serving!.url,
      credential: async () => (await readFile(keyFile, 'utf8')).trim(),
      credentialType: ACCESS_TOKEN_TYPE,
      requestToken: REQUEST_TOKEN,
      port: 0,
      secrets: [],
      audiences: [],
      templates: [await loadTemplate(`${join(dir, 'app.tmpl')}:${file}`)],
      ...(onRevoke === 'blank' ? { notify: { pid: () => Promise.resolve(app.pid), signal: 'SIGHUP' as const, quietMs: 50 } } : {}),
      onRevoke: onRevoke === 'blank' ? undefined : onRevoke, // blank: the default
      logger: (event) => logs.push(event),
    });
    agents.set(onRevoke, { agent, logs, file });
  }
}, 120_000);
afterAll(async () => {
  for (const { agent } of agents.values()) await agent.stop();
  await h?.stop();
  app.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('after a revocation with no replacement to fetch, a rendered file no longer holds the revoked value (blank by default, or removed), and the process is signalled', async () => {
  const leaked = await storedValue(h, 'db-password');
  const apiKey = await storedValue(h, 'api-key');
  for (const { file } of agents.values()) expect(await readFile(file, 'utf8')).toBe(`DB_PASSWORD=${leaked}\nAPI_KEY=${apiKey}\n`);
  // The start's rendering told to the app first, so the signal counted below is the revocation's.
  await until(() => Promise.resolve(agents.get('blank')!.logs.some((l) => l.code === 'agent_signalled') && hups === 1), 20_000, 'the app signalled after the first rendering');

  j.fail('issue', Infinity, true); // the replacement cannot be issued
  await h.runtime.engine.revoke('db-password', 1);
  await until(async () => (await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'db-password' }, number: 1 } })).state === 'revoked', 20_000, 'revoked at the issuer');
  const withdrawn = (onRevoke: 'blank' | 'remove') => agents.get(onRevoke)!.logs.find((l) => l.code === 'agent_withdrawn');
  await until(() => Promise.resolve(!!withdrawn('blank') && !!withdrawn('remove')), 20_000, 'both agents withdrew the revoked value');
  expect(withdrawn('blank')).toEqual({ code: 'agent_withdrawn', secrets: ['db-password'], onRevoke: 'blank', files: 1 });
  expect(withdrawn('remove')).toEqual({ code: 'agent_withdrawn', secrets: ['db-password'], onRevoke: 'remove', files: 1 });
  // Each after its refetch failed.
  for (const onRevoke of ['blank', 'remove'] as const) {
    const { logs } = agents.get(onRevoke)!;
    expect(logs.findIndex((l) => l.code === 'agent_refresh_failed' && l.secret === 'db-password')).toBeLessThan(logs.findIndex((l) => l.code === 'agent_withdrawn'));
  }

  // blank: the revoked value's place empty, the other value kept, 0600, written atomically (the existing rendering).
  const blank = agents.get('blank')!.file;
  expect(await readFile(blank, 'utf8')).toBe(`DB_PASSWORD=\nAPI_KEY=${apiKey}\n`);
  expect((await stat(blank)).mode & 0o777).toBe(0o600);
  // remove: no file.
  expect(await readFile(agents.get('remove')!.file, 'utf8').catch((error: NodeJS.ErrnoException) => error.code)).toBe('ENOENT');
  // The app is told, as on a change.
  await until(() => Promise.resolve(hups >= 2), 20_000, 'the app signalled after the revocation');
  // keep: asked for, the revoked value stays (once its refetch failed too).
  const keep = agents.get('keep')!.logs;
  await until(() => Promise.resolve(keep.some((l) => l.code === 'agent_refresh_failed' && l.secret === 'db-password')), 20_000, 'the keep agent tried to refetch');
  expect(keep.map((l) => l.code)).not.toContain('agent_withdrawn');
  expect(await readFile(agents.get('keep')!.file, 'utf8')).toBe(`DB_PASSWORD=${leaked}\nAPI_KEY=${apiKey}\n`);
  // No value in any log line.
  for (const { logs } of agents.values()) expect(JSON.stringify(logs)).not.toContain(leaked);
}, 60_000);
