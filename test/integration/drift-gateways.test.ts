/**
 * Self-healing delivery against real HAProxy, Caddy and nginx processes: a worker's drift
 * check (one-second interval here) finds a gateway restarted from a state without the
 * current key, or holding a retired key put back by hand, and repairs it: the current key
 * is accepted again, the retired key refused again, and the first check after the change
 * is the one that repairs it. A Caddy that persists its config keeps its keys over a restart
 * before any check runs.
 */
import { randomUUID } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRuntimeEndpoint, runtimeCommand } from '../../providers/haproxy/runtime-api.js';
import {
  type Backend,
  type CaddyGateway,
  type Gateway,
  type HaproxyGateway,
  type NginxGateway,
  send,
  sendJson,
  startBackend,
  startCaddy,
  startHaproxy,
  startNginx,
  whileSwapping,
} from '../support/gateways/index.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let backend: Backend;
let haproxy: HaproxyGateway;
let caddy: CaddyGateway;
let persisted: CaddyGateway;
let nginx: NginxGateway;
const secret = `dg-${randomUUID().slice(0, 8)}`;
const kept = `dp-${randomUUID().slice(0, 8)}`;
/** The retired (revoked) key and the current one of `secret`; `kept`'s current key. */
let retiredKey: string;
let currentKey: string;
let keptKey: string;

const provider = (name: string, type: string, gateway: Gateway, interval: string) =>
  `  ${name}: ${JSON.stringify({ type, ...gateway.providerConfig, drift: { interval } })}`;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (a hang guard, not a speed bound)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Replaces a file at once, as a restore from a backup would: a check never reads it half written. */
async function restore(file: string, text: string): Promise<void> {
  await writeFile(`${file}.restore`, text);
  await rename(`${file}.restore`, file);
}

/** A line of rekey's nginx map file, as a backup of it holds it. */
const nginxLine = (key: string) => `"~^${key}$" "${secret}";\n`;

const status = async (gateway: Gateway, key: string) => (await send(gateway.url, gateway.header, key)).status;

/** The audit events `target.drift` of `target` after `seq`, oldest first. */
async function driftEvents(target: string, after: bigint) {
  const rows = await h.runtime.db.auditEvent.findMany({ where: { action: 'target.drift', seq: { gt: after } }, orderBy: { seq: 'asc' } });
  return rows.map((r) => r.data as { target: string; found: { missing: number[]; unwanted: number[] }; done: { redeployed: number[]; retiring: number[] } }).filter((d) => d.target === target);
}

/** The first drift event of `target` after `seq`: a check records it once its repairs are done, so it may follow the repair. */
async function firstDrift(target: string, after: bigint) {
  await until(`a target.drift event of ${target}`, async () => (await driftEvents(target, after)).length > 0);
  return (await driftEvents(target, after))[0];
}

/**
 * Rotates `name` and expects it to succeed; a failure names the run's step and error (a rollback
 * says why). Waits up to 90 s, a hang guard: deploying to three real gateways (nginx -t and a
 * reload among them) took over the harness's default 20 s at load 30 on 2 cores.
 */
async function rotated(name: string): Promise<void> {
  const run = await h.rotate(name, 90_000);
  expect(run.status, `${name}: ${run.status} at ${run.step}: ${run.error}`).toBe('succeeded');
}

const lastSeq = async () => (await h.runtime.db.auditEvent.aggregate({ _max: { seq: true } }))._max.seq ?? 0n;


/** The current key is accepted and the retired one refused, and stays so for a burst of requests. */
async function expectRepaired(gateway: Gateway): Promise<void> {
  await until(`${gateway.name} accepts the current key and refuses the retired one`, async () => (await status(gateway, currentKey)) === 200 && (await status(gateway, retiredKey)) === 401);
  const answers = await Promise.all(Array.from({ length: 20 }, () => status(gateway, currentKey)));
  expect(answers.filter((s) => s !== 200)).toEqual([]);
}

beforeAll(async () => {
  backend = await startBackend();
  [haproxy, caddy, persisted, nginx] = await Promise.all([startHaproxy(backend.port), startCaddy(backend.port), startCaddy(backend.port, { persist: true }), startNginx(backend.port)]);
  h = await startHarness({ label: 'drift-gateways' });
  await h.apply(`
providers:
  vault: { type: local }
${provider('edge', 'haproxy', haproxy, '1s')}
${provider('web', 'caddy', caddy, '1s')}
${provider('saved', 'caddy', persisted, '1h')}
${provider('proxy', 'nginx', nginx, '1s')}
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_dg_ }
    targets: [edge, web, proxy]
    grace: 1s
    retry: { attempts: 3, backoff: 100ms }
  ${kept}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_dp_ }
    targets: [saved]
`);
  await rotated(secret);
  retiredKey = await h.currentValue(secret);
  await rotated(secret);
  currentKey = await h.currentValue(secret);
  await rotated(kept);
  keptKey = await h.currentValue(kept);
  await until('version 1 revoked after its grace', async () => (await h.runtime.db.version.findFirst({ where: { secret: { name: secret }, number: 1 } }))?.state === 'revoked');
  for (const gateway of [haproxy, caddy, nginx]) await expectRepaired(gateway);
}, 360_000); // a hang guard: three rotations of up to 90 s each (rotated) and the gateways' start

afterAll(async () => {
  await h?.stop();
  await Promise.all([haproxy?.stop(), caddy?.stop(), persisted?.stop(), nginx?.stop()]);
  await backend?.close();
});

describe('a gateway restarted from a state without the current key', () => {
  it('HAProxy restarted from an old map file: the first drift check deploys the current key and retires the old one', async () => {
    const since = await lastSeq();
    await restore(haproxy.map, `${retiredKey} ${secret}\n`);
    await haproxy.restart();
    await expectRepaired(haproxy);
    const first = await firstDrift('edge', since);
    expect(first).toMatchObject({ found: { missing: [2], unwanted: [1] }, done: { redeployed: [2], retiring: [1] } });
  }, 60_000);

  it('Caddy without a persisted config (admin API only): the first check after the restart deploys the current key', async () => {
    const since = await lastSeq();
    await caddy.restart();
    await expectRepaired(caddy);
    const first = await firstDrift('web', since);
    expect(first).toMatchObject({ found: { missing: [2], unwanted: [] }, done: { redeployed: [2] } });
  }, 60_000);

  it('Caddy with a persisted config keeps its keys over a restart, before any drift check runs', async () => {
    const since = await lastSeq();
    await persisted.restart();
    expect(await status(persisted, keptKey)).toBe(200);
    expect(await driftEvents('saved', since)).toEqual([]);
  }, 60_000);

  it('nginx with its map file restored from a backup and restarted: the check deploys the current key and retires the old one', async () => {
    const since = await lastSeq();
    await restore(nginx.map, nginxLine(retiredKey));
    await nginx.restart();
    await expectRepaired(nginx);
    expect(await firstDrift('proxy', since)).toMatchObject({ found: { missing: [2], unwanted: [1] }, done: { redeployed: [2], retiring: [1] } });
  }, 60_000);
});

describe('a retired key put back by hand', () => {
  it('HAProxy: added to the live map, it is refused again', async () => {
    const since = await lastSeq();
    const answer = await runtimeCommand(parseRuntimeEndpoint(haproxy.runtimeApi.unix), `add map ${haproxy.map} ${retiredKey} ${secret}`, new AbortController().signal, 5000);
    expect(answer.trim()).toBe('');
    await expectRepaired(haproxy);
    expect(await firstDrift('edge', since)).toMatchObject({ found: { missing: [], unwanted: [1] }, done: { retiring: [1] } });
  }, 60_000);

  it('Caddy: added to the map handler through the admin API, it is refused again', async () => {
    const since = await lastSeq();
    const url = `${caddy.admin}/id/${caddy.handler}/mappings`;
    // Connections of their own: Caddy was restarted by an earlier test, which resets a kept-alive socket.
    // Caddy's admin listener can reset a connection while it loads a config a drift check just
    // sent: such a reset is retried, a changed map is re-read first (and the key not added twice
    // when the reset PATCH had landed).
    const put = await whileSwapping(async () => {
      const mappings = JSON.parse((await send(url, 'accept', 'application/json')).body) as Array<{ input?: unknown }>;
      const added = mappings.some((m) => m.input === retiredKey);
      return sendJson(url, 'PATCH', added ? mappings : [...mappings, { input: retiredKey, outputs: [secret] }]);
    });
    expect(put.status).toBe(200);
    await expectRepaired(caddy);
    expect(await firstDrift('web', since)).toMatchObject({ found: { unwanted: [1] }, done: { retiring: [1] } });
  }, 60_000);

  it('nginx: written into the map file, it is refused again', async () => {
    const since = await lastSeq();
    await restore(nginx.map, nginxLine(currentKey) + nginxLine(retiredKey));
    await nginx.restart();
    await expectRepaired(nginx);
    expect(await firstDrift('proxy', since)).toMatchObject({ found: { unwanted: [1] }, done: { retiring: [1] } });
  }, 60_000);

  it('rekey status shows the sync status of each target', async () => {
    const rows = await h.runtime.db.targetSync.findMany({ where: { secret: { name: secret } }, orderBy: { target: 'asc' } });
    expect(rows.map((r) => r.target)).toEqual(['edge', 'proxy', 'web']);
    for (const row of rows) {
      expect(row.lastDriftAt).not.toBeNull();
      expect(row.lastDrift).toMatch(/unwanted v1/);
      expect(row.lastRepairedAt).not.toBeNull();
    }
    const log = h.logs.join('\n');
    expect(log).not.toContain(currentKey);
    expect(log).not.toContain(retiredKey);
  });
});
