// A receiver whose credential reference does not resolve on this process (the variable missing from
// one replica's environment) answers 503 to everyone; anyone can send it requests, so the
// misconfiguration is logged at error once per receiver and config revision, not once per request.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { gatewaySecretYaml, leaksYaml, post, providersYaml, startLeakEnv, type LeakEnv } from './support.js';

let e: LeakEnv;
const yaml = () => `${providersYaml(e)}\nsecrets:${gatewaySecretYaml(`mc-${randomUUID().slice(0, 6)}`)}\n${leaksYaml(e)}`;

beforeAll(async () => {
  e = await startLeakEnv('misconfigured');
  await e.h.apply(yaml());
  delete process.env[e.env.gitguardian]; // this replica's environment lacks it
});
afterAll(() => e?.stop());

const unsigned = () =>
  post(e.h.serving!.url, '/webhooks/gitguardian', '{}', { 'content-type': 'application/json', 'gitguardian-signature': `sha256=${'0'.repeat(64)}`, timestamp: String(Math.floor(Date.now() / 1000)) });
const errorLines = () => e.h.logs.filter((l) => l.includes('leak receiver misconfigured') && (JSON.parse(l) as { level: number }).level >= 50);

it('logs a misconfigured receiver at error once per config revision, however many requests reach it', async () => {
  const revision = () => e.h.runtime.resolver.config().then((c) => c.leaks);
  const applied = await revision();
  const statuses = new Set<number>();
  for (let i = 0; i < 200; i++) statuses.add((await unsigned()).status);
  expect([...statuses]).toEqual([503]);
  expect(await revision()).toBe(applied); // one revision throughout
  const lines = errorLines();
  expect(lines).toHaveLength(1);
  // It names what to fix (the variable), not a value.
  expect(lines[0]).toContain(e.env.gitguardian);

  // A new revision (an apply, maybe the fix, maybe not) is logged again, once.
  await e.h.apply(yaml());
  await expect.poll(revision, { timeout: 10_000, interval: 50 }).not.toBe(applied);
  for (let i = 0; i < 20; i++) expect((await unsigned()).status).toBe(503);
  expect(errorLines()).toHaveLength(2);
});
