/**
 * The store check (src/core/store-drift.ts), through the real engine: a store whose current stage
 * is on a version rekey rolled back (AWS: a stalled driver's UpdateSecretVersionStage landing after
 * its successor's rollback) or on a leaked version not yet revoked is found and given back, by a full
 * reconcile pass; a version written
 * outside rekey is reported and left alone; a secret with a running rotation is not touched.
 */
import { randomUUID } from 'node:crypto';
import { PutSecretValueCommand, SecretsManagerClient, UpdateSecretVersionStageCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { storeSyncName } from '../../src/core/sync.js';
import { storeCheckKey } from '../../src/reconcile-passes.js';
import type { VersionRecord } from '../../src/core/model.js';
import { officialClient } from '../../providers/gcp-secret-manager/test/fake/secret-manager-fake.js';
import { GCP_PROJECT, startCloudFakes, type CloudFakes } from '../events/cloud-fakes.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';

let h: Harness;
let fakes: CloudFakes;
let aws: SecretsManagerClient;
const id = randomUUID().slice(0, 8);
const JOURNAL = `store-drift-${id}`;
const j = journal(JOURNAL);
const awsName = `rekey-sd/${id}`;
const gcpName = `rekey-sd-${id}`;

beforeAll(async () => {
  fakes = await startCloudFakes();
  aws = new SecretsManagerClient({ region: 'us-east-1', endpoint: fakes.aws.endpoint });
  h = await startHarness({ label: 'store-drift', workers: false });
  await h.apply(`
providers:
${fakes.providers}
  mem: { type: memory, journal: ${JOURNAL} }
  vault: { type: local }
secrets:
  sd-aws:
    store: { provider: aws, name: ${awsName} }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-leaked:
    store: { provider: aws, name: ${awsName}-leaked }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-foreign:
    store: { provider: aws, name: ${awsName}-foreign }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-verify:
    store: { provider: aws, name: ${awsName}-verify }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-local:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-gcp:
    store: { provider: gcp, name: ${gcpName} }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-gcp-restored:
    store: { provider: gcp, name: ${gcpName}-restored }
    issuer: { type: random, prefix: rk_sd_ }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
  sd-mem:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [mem]
    retry: { attempts: 1, backoff: 10ms }
`);
});

afterAll(async () => {
  aws?.destroy();
  await h?.stop();
  await fakes?.close();
});

const deps = () => h.runtime.engine.deps;

async function newRun(secret: string): Promise<string> {
  const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  return result.run.id;
}

/** A rotation of `secret` to the end; returns the version it promoted. */
async function rotated(secret: string): Promise<VersionRecord> {
  const runId = await newRun(secret);
  await expect(h.runtime.engine.driveRotation(runId, { final: false })).resolves.toBe('succeeded');
  return (await deps().repo.getVersion((await deps().repo.getRun(runId))!.versionId!))!;
}

/** A rotation of `secret` whose target refuses the new key for good: rolled back; returns its version (failed, destroyed in the store). */
async function rolledBack(secret: string): Promise<VersionRecord> {
  j.fail('verify:mem', 1, false);
  const runId = await newRun(secret);
  await expect(h.runtime.engine.driveRotation(runId, { final: true })).resolves.toBe('rolled_back');
  return (await deps().repo.getVersion((await deps().repo.getRun(runId))!.versionId!))!;
}

/** AWS's staging labels per version id (deprecated versions included: no label). */
function labels(name: string): Map<string, string[]> {
  return new Map([...fakes.aws.model.secrets.get(name)!.versions.values()].map((v) => [v.id, [...v.stages].sort()]));
}

/** The next period's full reconcile pass (an earlier pass had this period's store check): it checks the stores. */
async function nextFullPass(): Promise<void> {
  await h.runtime.redis.del(storeCheckKey(h.settings.queuePrefix));
  await h.runtime.reconcile();
}

const syncRow = (secretId: string, store: string) => h.runtime.db.targetSync.findUnique({ where: { secretId_target: { secretId, target: storeSyncName(store) } } });
const driftEvents = (secret: string) => h.runtime.db.auditEvent.findMany({ where: { action: 'store.drift', secret }, orderBy: { seq: 'asc' } });

it("AWS: a stalled driver's promotion that lands after its successor's rollback is found by a full reconcile pass and given back; the store serves rekey's current again", async () => {
  // A version in its grace (24 h) and a current one, then a rotation rolled back.
  const previous = await rotated('sd-aws');
  const current = await rotated('sd-aws');
  const failed = await rolledBack('sd-aws');
  expect(failed.state).toBe('failed');
  // The rollback destroyed it: no label left.
  expect(labels(awsName).get(failed.storeVersionId!)).toEqual([]);
  // The stalled driver's UpdateSecretVersionStage lands now, as its promote sent it (AWS checks nothing about the version it moves to).
  await aws.send(new UpdateSecretVersionStageCommand({ SecretId: awsName, VersionStage: 'AWSCURRENT', MoveToVersionId: failed.storeVersionId!, RemoveFromVersionId: current.storeVersionId! }));
  expect(deps().fingerprint(await readCurrent('sd-aws'))).toBe(failed.fingerprint);
  // AWS moved AWSPREVIOUS to the version AWSCURRENT left: the one in its grace has no label left.
  expect([labels(awsName).get(previous.storeVersionId!), labels(awsName).get(current.storeVersionId!)]).toEqual([[], ['AWSPREVIOUS']]);

  // The secret rolled back recently, so its store is checked.
  await nextFullPass();

  expect(labels(awsName).get(current.storeVersionId!)).toEqual(['AWSCURRENT']);
  expect(labels(awsName).get(failed.storeVersionId!)).toEqual([]);
  // The version in its grace is AWSPREVIOUS again, as before the late promotion.
  expect(labels(awsName).get(previous.storeVersionId!)).toEqual(['AWSPREVIOUS']);
  expect(deps().fingerprint(await readCurrent('sd-aws'))).toBe(current.fingerprint);
  // Reported: audit event, sync row (what `rekey status` shows), log line by ids and numbers.
  const [event] = await driftEvents('sd-aws');
  expect(event?.data).toMatchObject({ store: 'aws', found: 'not-live', repaired: true, rekeyCurrent: current.number, storeCurrent: { storeVersionId: failed.storeVersionId, number: failed.number, state: 'failed' } });
  const row = await syncRow(current.secretId, 'aws');
  expect(row?.lastDrift).toBe(`store current v${failed.number} (failed), rekey current v${current.number}`);
  expect(row?.lastRepairedAt).not.toBeNull();
  const lines = h.logs.filter((l) => l.includes('the store served a version rekey took out of service as current'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(failed.storeVersionId!);
  expect(await h.runtime.metrics.registry.metrics()).toMatch(/rekey_store_drift_total\{store="aws",found="not-live",repaired="true"\} 1/);

  // The next check finds it in sync, and changes nothing.
  const again = await h.runtime.engine.checkStores(['sd-aws'], { repair: true });
  expect(again.results.map((r) => [r.found, r.repaired])).toEqual([['in-sync', false]]);
  expect(await driftEvents('sd-aws')).toHaveLength(1);
});

// A leaked version stays compromised until its revocation has run, for as long as that fails (an issuer down); here no
// worker runs it. A store serving it as current again (a stage moved back by hand, a late promotion) is as out of service as a rolled-back one.
it('AWS: a leaked version, compromised and not yet revoked, made current again in the store is found by a full reconcile pass and given back', async () => {
  const name = `${awsName}-leaked`;
  const leaked = await rotated('sd-leaked');
  const current = await rotated('sd-leaked');
  // Reported leaked in its grace: compromised at once, its revocation queued.
  expect((await h.runtime.engine.revoke('sd-leaked', leaked.number)).outcome).toBe('revoking');
  expect((await deps().repo.getVersion(leaked.id))?.state).toBe('compromised');
  await aws.send(new UpdateSecretVersionStageCommand({ SecretId: name, VersionStage: 'AWSCURRENT', MoveToVersionId: leaked.storeVersionId!, RemoveFromVersionId: current.storeVersionId! }));
  expect(deps().fingerprint(await readCurrent('sd-leaked'))).toBe(leaked.fingerprint);

  await nextFullPass();

  expect(deps().fingerprint(await readCurrent('sd-leaked'))).toBe(current.fingerprint);
  expect(labels(name).get(current.storeVersionId!)).toEqual(['AWSCURRENT']);
  expect(labels(name).get(leaked.storeVersionId!)).toEqual([]);
  const [event] = await driftEvents('sd-leaked');
  expect(event?.data).toMatchObject({ store: 'aws', found: 'not-live', repaired: true, rekeyCurrent: current.number, storeCurrent: { storeVersionId: leaked.storeVersionId, number: leaked.number, state: 'compromised' } });
  expect((await syncRow(current.secretId, 'aws'))?.lastDrift).toBe(`store current v${leaked.number} (compromised), rekey current v${current.number}`);
});

it('AWS: a current version written outside rekey (by hand) is reported and left as it is', async () => {
  const current = await rotated('sd-foreign');
  // Someone puts a value straight in as AWSCURRENT.
  const foreign = await aws.send(new PutSecretValueCommand({ SecretId: `${awsName}-foreign`, SecretString: 'typed-by-hand', VersionStages: ['AWSCURRENT'] }));
  const before = labels(`${awsName}-foreign`);

  const report = await h.runtime.engine.checkStores(['sd-foreign'], { repair: true });

  expect(report.results.map((r) => [r.found, r.repaired])).toEqual([['unknown', false]]);
  // Nothing moved: the store still serves the foreign version.
  expect(labels(`${awsName}-foreign`)).toEqual(before);
  expect(labels(`${awsName}-foreign`).get(foreign.VersionId!)).toEqual(['AWSCURRENT']);
  const [event] = await driftEvents('sd-foreign');
  expect(event?.data).toMatchObject({ found: 'unknown', repaired: false, rekeyCurrent: current.number, storeCurrent: { storeVersionId: foreign.VersionId } });
  const row = await syncRow(current.secretId, 'aws');
  expect(row?.lastDrift).toBe(`store current is a version rekey does not know (${foreign.VersionId}), rekey current v${current.number}`);
  expect(row?.lastRepairedAt).toBeNull();
  // `rekey status` shows it, not in sync.
  const { secretStatus, formatStatus } = await import('../../src/cli/status.js');
  expect(formatStatus(await secretStatus(h.runtime, 'sd-foreign'))).toMatch(/sync store:aws: NOT in sync.*store current is a version rekey does not know/);
  // No value in any log line or audit event.
  expect(h.logs.join('\n')).not.toContain('typed-by-hand');
  expect(JSON.stringify(event?.data)).not.toContain('typed-by-hand');
});

it('a secret with a running rotation is left alone; once the run has ended, its store is repaired', async () => {
  const current = await rotated('sd-mem');
  const failed = await rolledBack('sd-mem');
  // The store's current stage moved back onto the rolled-back version (its value put back, as a late promotion would leave it).
  const held = [...j.stored.entries()].find(([, v]) => v.versionId === current.id)!;
  held[1].stages = ['previous'];
  j.stored.set(failed.storeVersionId!, { secret: 'sd-mem', versionId: failed.id, value: held[1].value, stages: ['current'] });
  const serving = () => [...j.stored.values()].filter((v) => v.secret === 'sd-mem' && v.stages.includes('current')).map((v) => v.versionId);
  expect(serving()).toEqual([failed.id]);

  // A rotation is running (queued, not yet driven): it moves the stages itself, so the check does not compare.
  const runId = await newRun('sd-mem');
  j.reset();
  const report = await h.runtime.engine.checkStores(['sd-mem'], { repair: true });
  expect(report).toEqual({ results: [], skipped: ['sd-mem'] });
  expect(j.calls).toEqual([]); // not even a list
  expect(serving()).toEqual([failed.id]);
  expect(await driftEvents('sd-mem')).toEqual([]);

  // The run ends (given up, say): the next check compares and gives the stage back.
  await deps().repo.finishRun(runId, 'failed', { actor: 'test', runId }, 'given up');
  const next = await h.runtime.engine.checkStores(['sd-mem'], { repair: true });
  expect(next.results.map((r) => [r.found, r.repaired])).toEqual([['not-live', true]]);
  expect(j.calls).toEqual(['store.list', 'store.promote', 'store.destroy']);
  expect(serving()).toEqual([current.id]);
  expect(j.stored.has(failed.storeVersionId!)).toBe(false);
});

it('rekey verify NAME: prints what the store serves as current, changing nothing and recording only that it checked (exit 1); --repair gives the stage back and records the drift', async () => {
  const name = `${awsName}-verify`;
  const current = await rotated('sd-verify');
  const failed = await rolledBack('sd-verify');
  await aws.send(new UpdateSecretVersionStageCommand({ SecretId: name, VersionStage: 'AWSCURRENT', MoveToVersionId: failed.storeVersionId!, RemoveFromVersionId: current.storeVersionId! }));
  const before = labels(name);
  const drift = `store current v${failed.number} (failed), rekey current v${current.number}`;

  const found = await rekey(['verify', 'sd-verify'], h.childEnv());
  expect(found.code).toBe(1);
  expect(found.stdout).toContain(`store:aws  sd-verify  DRIFT ${drift}`);
  // Without --repair, only a report: the store untouched, no drift event, the sync row says only that it checked.
  expect(labels(name)).toEqual(before);
  expect(await driftEvents('sd-verify')).toEqual([]);
  const checked = await syncRow(current.secretId, 'aws');
  expect(checked?.lastCheckedAt).not.toBeNull();
  expect([checked?.lastDrift, checked?.lastRepairedAt, checked?.driftStreak]).toEqual([null, null, 0]);
  // Ids, numbers and states: the JSON report carries no value either.
  const json = await rekey(['verify', 'sd-verify', '--json'], h.childEnv());
  expect((JSON.parse(json.stdout) as { stores: unknown }).stores).toEqual({ results: [expect.objectContaining({ secret: 'sd-verify', store: 'aws', found: 'not-live', repaired: false })], skipped: [] });

  const repaired = await rekey(['verify', 'sd-verify', '--repair'], h.childEnv());
  expect(repaired.code).toBe(1);
  expect(repaired.stdout).toContain(`store:aws  sd-verify  DRIFT ${drift}; repaired`);
  expect(labels(name).get(current.storeVersionId!)).toEqual(['AWSCURRENT']);
  expect(await driftEvents('sd-verify')).toHaveLength(1);
  expect((await syncRow(current.secretId, 'aws'))?.lastDrift).toBe(drift);

  const again = await rekey(['verify', 'sd-verify'], h.childEnv());
  expect(again.stdout).toContain(`store:aws  sd-verify  in sync (v${current.number})`);
  expect(again.code).toBe(0);
  // A secret with no current version yet: nothing to compare, no drift.
  const fresh = await rekey(['verify', 'sd-local'], h.childEnv());
  expect(fresh.stdout).toContain('store  sd-local  not compared (no current version');
  expect(fresh.code).toBe(0);
});

/** A finding reported, not repaired: its audit event, the sync row `rekey status` shows, the count. */
async function expectReported(secret: string, store: string, current: VersionRecord, found: 'live' | 'unknown', storeCurrent: string, lastDrift: string) {
  const events = await driftEvents(secret);
  expect(events).toHaveLength(1);
  expect(events[0]!.data).toMatchObject({ store, found, repaired: false, rekeyCurrent: current.number, storeCurrent: { storeVersionId: storeCurrent } });
  const row = await syncRow(current.secretId, store);
  expect(row?.lastDrift).toBe(lastDrift);
  expect(row?.lastRepairedAt).toBeNull();
  expect(await h.runtime.metrics.registry.metrics()).toContain(`rekey_store_drift_total{store="${store}",found="${found}",repaired="false"} 1`);
}

it('local store: the current stage moved by hand (SQL) back onto the version in its grace is found by a full reconcile pass, reported and left as it is', async () => {
  const previous = await rotated('sd-local');
  const current = await rotated('sd-local');
  const stages = () => h.runtime.db.$queryRawUnsafe<Array<{ id: string; stages: string[] }>>(`SELECT id::text, stages FROM local_store_versions WHERE secret = 'sd-local' AND destroyed_at IS NULL ORDER BY created_at`);
  expect(await stages()).toEqual([
    { id: previous.storeVersionId, stages: ['previous'] },
    { id: current.storeVersionId, stages: ['current'] },
  ]);
  await h.runtime.db.$executeRawUnsafe(
    `UPDATE local_store_versions SET stages = CASE id WHEN $1::uuid THEN '{current}'::text[] ELSE '{previous}'::text[] END WHERE secret = 'sd-local' AND id IN ($1::uuid, $2::uuid)`,
    previous.storeVersionId,
    current.storeVersionId,
  );
  const moved = await stages();

  await nextFullPass();

  await expectReported('sd-local', 'vault', current, 'live', previous.storeVersionId!, `store current v${previous.number} (previous), rekey current v${current.number}`);
  // Nothing moved: a version rekey holds live as current is for a person to look at.
  expect(await stages()).toEqual(moved);
  expect(deps().fingerprint(await readCurrent('sd-local'))).toBe(previous.fingerprint);
});

it("Google: a version added by hand and aliased current through the official client is found by a full reconcile pass, reported and left as it is", async () => {
  const current = await rotated('sd-gcp');
  const gcp = officialClient(fakes.gcp.port);
  try {
    const parent = `projects/${GCP_PROJECT}/secrets/${gcpName}`;
    const [added] = await gcp.addSecretVersion({ parent, payload: { data: Buffer.from('typed-by-hand-in-gcp') } });
    const foreign = added.name!.split('/').at(-1)!;
    const [secret] = await gcp.getSecret({ name: parent });
    await gcp.updateSecret({ secret: { name: parent, versionAliases: { ...secret.versionAliases, current: foreign, previous: current.storeVersionId! } }, updateMask: { paths: ['version_aliases'] } });
    const aliases = { ...fakes.gcp.model.secrets.get(gcpName)!.aliases };

    await nextFullPass();

    await expectReported('sd-gcp', 'gcp', current, 'unknown', foreign, `store current is a version rekey does not know (${foreign}), rekey current v${current.number}`);
    expect(fakes.gcp.model.secrets.get(gcpName)!.aliases).toEqual(aliases);
    expect((await readCurrent('sd-gcp')).reveal()).toBe('typed-by-hand-in-gcp');
    expect(h.logs.join('\n')).not.toContain('typed-by-hand-in-gcp');
  } finally {
    await gcp.close();
  }
});

it('Google: a rolled-back version enabled again by hand and aliased current is found by a full reconcile pass and given back', async () => {
  const current = await rotated('sd-gcp-restored');
  const failed = await rolledBack('sd-gcp-restored');
  const gcp = officialClient(fakes.gcp.port);
  try {
    const parent = `projects/${GCP_PROJECT}/secrets/${gcpName}-restored`;
    // Enabled again (in the console, say; the fake has no EnableSecretVersion): the rollback only disabled it.
    const version = fakes.gcp.model.secrets.get(`${gcpName}-restored`)!.versions.find((v) => String(v.number) === failed.storeVersionId)!;
    expect(version.state).toBe('DISABLED');
    version.state = 'ENABLED';
    const [secret] = await gcp.getSecret({ name: parent });
    await gcp.updateSecret({ secret: { name: parent, versionAliases: { ...secret.versionAliases, current: failed.storeVersionId! } }, updateMask: { paths: ['version_aliases'] } });
    expect(deps().fingerprint(await readCurrent('sd-gcp-restored'))).toBe(failed.fingerprint);

    await nextFullPass();

    const [event] = await driftEvents('sd-gcp-restored');
    // rekey's current version lost its only alias to the hand's move: it is still rekey's (its annotation), so it is promoted.
    expect(event?.data).toMatchObject({ store: 'gcp', found: 'not-live', repaired: true, storeCurrent: { storeVersionId: failed.storeVersionId, state: 'failed' } });
    expect(event?.data).not.toHaveProperty('error');
    expect(deps().fingerprint(await readCurrent('sd-gcp-restored'))).toBe(current.fingerprint);
    // And the restored version is out of service again.
    expect(fakes.gcp.model.secrets.get(`${gcpName}-restored`)!.aliases).toEqual({ current: Number(current.storeVersionId) });
    expect(version.state).toBe('DISABLED');
  } finally {
    await gcp.close();
  }
});

/** What the secret's store serves as current, read as any client would (stage `current`). */
async function readCurrent(secret: string) {
  const { store } = await h.runtime.resolver.resolve(secret);
  return store.read({ stage: 'current' }, { signal: new AbortController().signal });
}
