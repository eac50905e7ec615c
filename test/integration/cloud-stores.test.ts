/**
 * End to end, through the engine and real workers: a rotation with each cloud store (AWS Secrets
 * Manager and Google Secret Manager, each a wire-protocol fake driven by the official SDK) plus
 * the random issuer and the in-memory target. Two rotations, then the previous version retired
 * after its grace; the stores' own staging labels / aliases are checked in the fakes, the value is
 * followed from issuer to store to target by fingerprint, and a steady-state rotation's API calls
 * are counted.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../conformance/refs.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { startCloudFakes, type CloudFakes } from '../events/cloud-fakes.js';

let h: Harness;
let fakes: CloudFakes;
const id = randomUUID().slice(0, 8);
const names = { aws: `rekey-e2e/${id}`, gcp: `rekey-e2e-${id}` };
const secrets = { aws: `e2e-aws-${id}`, gcp: `e2e-gcp-${id}` };
const journals = { aws: `e2e-aws-${id}`, gcp: `e2e-gcp-${id}` };

/** What the fake store holds, as rekey's stages: value and stages per version, oldest first. */
const storeView: Record<'aws' | 'gcp', () => Array<{ value: string | undefined; stages: string[]; live: boolean }>> = {
  aws: () =>
    [...fakes.aws.model.secrets.get(names.aws)!.versions.values()].map((v) => ({
      value: v.value,
      stages: [...v.stages].sort(),
      live: v.stages.size > 0, // no label = deprecated, AWS's "destroyed"
    })),
  gcp: () => {
    const secret = fakes.gcp.model.secrets.get(names.gcp)!;
    return secret.versions.map((v) => ({
      value: v.data?.toString('utf8'),
      stages: Object.entries(secret.aliases)
        .filter(([, n]) => n === v.number)
        .map(([alias]) => alias)
        .sort(),
      live: v.state === 'ENABLED',
    }));
  },
};
const CURRENT = { aws: ['AWSCURRENT'], gcp: ['current'] };
const PREVIOUS = { aws: ['AWSPREVIOUS'], gcp: ['previous'] };

async function versions(secret: string) {
  return h.runtime.db.version.findMany({
    where: { secret: { name: secret } },
    orderBy: { number: 'asc' },
    select: { number: true, state: true, fingerprint: true },
  });
}

beforeAll(async () => {
  fakes = await startCloudFakes();
  h = await startHarness({ label: 'cloud-stores' });
  await h.apply(`
providers:
${fakes.providers}
  edge-aws: { type: memory, journal: ${journals.aws} }
  edge-gcp: { type: memory, journal: ${journals.gcp} }
secrets:
${(['aws', 'gcp'] as const)
  .map(
    (store) => `  ${secrets[store]}:
    store: { provider: ${store}, name: ${names[store]} }
    issuer: { type: random, prefix: rk_e2e_ }
    targets: [edge-${store}]
    grace: 1s
    retry: { attempts: 3, backoff: 50ms }
    timeout: 5s`,
  )
  .join('\n')}
`);
});

afterAll(async () => {
  await h?.stop();
  await fakes?.close();
});

describe.each(['aws', 'gcp'] as const)('%s store, random issuer, memory target', (store) => {
  it('rotates twice, then retires the previous version after its grace', async () => {
    const secret = secrets[store];
    const edge = journal(journals[store]);

    expect((await h.rotate(secret)).status).toBe('succeeded');
    expect(storeView[store]().map((v) => v.stages)).toEqual([CURRENT[store]]);

    expect((await h.rotate(secret)).status).toBe('succeeded');
    const [v1, v2] = await versions(secret);
    expect([v1!.state, v2!.state]).toEqual(['previous', 'current']);
    // During the grace: the store serves v2 as current and still holds v1 as previous; the target
    // accepts both.
    let view = storeView[store]();
    expect(view.map((v) => v.stages)).toEqual([PREVIOUS[store], CURRENT[store]]);
    expect(view.map((v) => fingerprint(v.value!))).toEqual([v1!.fingerprint, v2!.fingerprint]);
    expect(view.every((v) => v.value!.startsWith('rk_e2e_'))).toBe(true);
    expect([...edge.accepted.get(`edge-${store}`)!.keys()].sort()).toEqual([v1!.fingerprint, v2!.fingerprint].sort());

    // After the grace: v1 is gone from the target, revoked, and destroyed in the store.
    await expect.poll(async () => (await versions(secret)).map((v) => v.state), { timeout: 10_000 }).toEqual(['revoked', 'current']);
    view = storeView[store]();
    expect(view.map((v) => ({ stages: v.stages, live: v.live }))).toEqual([
      { stages: [], live: false },
      { stages: CURRENT[store], live: true },
    ]);
    expect([...edge.accepted.get(`edge-${store}`)!.keys()]).toEqual([v2!.fingerprint]);

    // No value reached a log line.
    const logs = h.logs.join('\n');
    for (const v of view) expect(logs).not.toContain(v.value ?? 'destroyed');
  });

  it('a steady-state rotation, retirement included, costs the calls the provider README states', async () => {
    const secret = secrets[store];
    const fake = fakes[store];
    fake.resetCalls();
    expect((await h.rotate(secret)).status).toBe('succeeded');
    // `revoked` is written after store.destroy, the retirement's last call.
    await expect.poll(async () => (await versions(secret)).map((v) => v.state), { timeout: 10_000 }).toEqual(['revoked', 'revoked', 'current']);
    const total = Object.values(fake.calls).reduce((a, b) => a + b, 0);
    console.log(`[figures] ${store} store through the engine: ${total} calls per rotation`, { ...fake.calls });
    expect(total).toBe(store === 'aws' ? 8 : 10);
  });
});
