/**
 * A full rotation through rekey's engine (workers, queues, PostgreSQL) with the local store,
 * the random issuer and the real HAProxy as target, while clients keep calling the API:
 * - the "current" client fetches the current key from the store just before every request, so
 *   it switches the moment a new version becomes current;
 * - the "previous" client keeps the key it used before the switch until that version's grace
 *   ends, like a replica that has not reloaded its configuration yet.
 * No request carrying a valid key may be rejected; after the grace the old key gets 401.
 */
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SecretStore } from '../../src/core/ports.js';
import { fingerprint } from '../conformance/refs.js';
import { send, sleep, startBackend, haproxyProviderYaml, startHaproxy, type Backend, type HaproxyGateway } from '../support/gateways/index.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let backend: Backend;
let gateway: HaproxyGateway;
const secret = `gw-${randomUUID().slice(0, 8)}`;
const GRACE_MS = 1500;

beforeAll(async () => {
  backend = await startBackend();
  gateway = await startHaproxy(backend.port);
  h = await startHarness({ label: 'gateway-rotation' });
  await h.apply(`
providers:
  vault: { type: local }
${haproxyProviderYaml(gateway)}
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_gw_ }
    targets: [edge]
    grace: ${GRACE_MS}ms
    retry: { attempts: 3, backoff: 100ms }
    timeout: 5s
`);
});
afterAll(async () => {
  await h?.stop();
  await gateway?.stop();
  await backend?.close();
});

interface Counts {
  sent: number;
  accepted: number;
  rejected: number;
  errors: number;
}
const counts = (): Counts => ({ sent: 0, accepted: 0, rejected: 0, errors: 0 });

async function versionRow(value: string) {
  return h.runtime.db.version.findFirst({ where: { fingerprint: fingerprint(value) }, select: { state: true, graceEndsAt: true, number: true } });
}

it('rotates under continuous traffic with zero rejections of a valid key; the old key is refused after its grace', async () => {
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const store: SecretStore = (await h.runtime.resolver.resolve(secret)).store;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const current = counts();
  const previous = counts();
  const previousClients: Array<Promise<void>> = [];
  const retiredKeys: string[] = [];
  const sentDuringRotations: number[] = [];
  const sentDuringGrace: number[] = [];
  let running = true;

  const request = async (key: string, tally: Counts) => {
    tally.sent += 1;
    try {
      const { status } = await send(gateway.url, gateway.header, key, agent);
      if (status === 200) tally.accepted += 1;
      else if (status === 401 || status === 403) tally.rejected += 1;
      else tally.errors += 1;
    } catch {
      tally.errors += 1;
    }
  };

  /** Keeps calling with a key that is no longer current until its version's grace is about to end. */
  const keepUsingPrevious = async (key: string) => {
    let graceEndsAt: Date | null | undefined;
    // The switch can be seen (store promoted) a moment before the database records the grace.
    for (let i = 0; i < 200 && !graceEndsAt; i++) {
      graceEndsAt = (await versionRow(key))?.graceEndsAt;
      if (!graceEndsAt) await sleep(5);
    }
    expect(graceEndsAt).toBeInstanceOf(Date);
    // Stop a little before the deadline: a request sent at the last millisecond may arrive after it.
    const sentBefore = previous.sent;
    while (Date.now() < graceEndsAt!.getTime() - 100) {
      await request(key, previous);
      await sleep(2);
    }
    sentDuringGrace.push(previous.sent - sentBefore);
    retiredKeys.push(key);
  };

  const currentClient = (async () => {
    let used: string | undefined;
    while (running) {
      // Just in time: the current value, straight from the store, before every request.
      const key = (await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(5000) })).reveal();
      if (used && key !== used) previousClients.push(keepUsingPrevious(used));
      used = key;
      await request(key, current);
      await sleep(2);
    }
  })();

  try {
    await sleep(200);
    for (let i = 0; i < 2; i++) {
      const sentBefore = current.sent;
      const run = await h.rotate(secret);
      // Continuous traffic: the current-key client kept calling while the rotation ran (a count,
      // not a rate: a loaded machine sends fewer, but never none).
      sentDuringRotations.push(current.sent - sentBefore);
      expect(run.status).toBe('succeeded');
      // Let the previous version's grace run out and its retirement complete under traffic.
      await expect.poll(async () => (await h.runtime.db.version.count({ where: { secret: { name: secret }, state: 'previous' } })), { timeout: GRACE_MS + 5000, interval: 50 }).toBe(0);
      await sleep(100);
    }
  } finally {
    running = false;
    await currentClient;
    await Promise.all(previousClients);
    agent.destroy();
  }

  console.log(
    `gateway-rotation (haproxy, 2 rotations): current-key client sent ${current.sent}, rejected ${current.rejected}, errors ${current.errors}; ` +
      `previous-key client sent ${previous.sent} during grace (${sentDuringGrace.join(', ')} per key; ${sentDuringRotations.join(', ')} current-key requests during each rotation), rejected ${previous.rejected}, errors ${previous.errors}`,
  );
  for (const sent of [...sentDuringRotations, ...sentDuringGrace]) expect(sent).toBeGreaterThan(2);
  expect([current.rejected, current.errors, previous.rejected, previous.errors]).toEqual([0, 0, 0, 0]);

  // After its grace, each retired key is refused by the real HAProxy; the current one still works.
  expect(retiredKeys).toHaveLength(2);
  for (const key of retiredKeys) {
    expect((await versionRow(key))?.state).toBe('revoked');
    expect((await send(gateway.url, gateway.header, key)).status).toBe(401);
  }
  const live = (await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(5000) })).reveal();
  expect((await send(gateway.url, gateway.header, live)).status).toBe(200);
  expect((await versionRow(live))?.number).toBe(3);
});
