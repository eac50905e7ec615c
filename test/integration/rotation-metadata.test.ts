/**
 * `rekey apply` (the real CLI, in a child process) mirrors each added or changed secret's schedule
 * into its store's own rotation metadata: Secret Manager's rotation and topic, Secrets Manager
 * tags. A store that refuses is reported for its secret, and the apply stands; the write stays
 * pending in PostgreSQL and is retried by the next apply and by the workers' housekeeping job.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ROTATION_TAGS } from '../../providers/aws-secrets-manager/index.js';
import { formatStatus, secretStatus } from '../../src/cli/status.js';
import { housekeepingCron } from '../../src/housekeeping.js';
import { GCP_PROJECT, startCloudFakes, type CloudFakes } from '../events/cloud-fakes.js';
import { childArgs } from '../support/children.js';
import { startHarness, type Harness } from '../support/harness.js';
import { laterSchedule } from '../support/schedules.js';

const TOPIC = `projects/${GCP_PROJECT}/topics/rekey-rotations`;
const id = randomUUID().slice(0, 8);
const names = { gcp: `rekey-meta-${id}`, aws: `rekey-meta/${id}`, conflicted: `rekey-meta/conflicted-${id}` };
// Weekly and daily patterns first due hours from now: the harness runs workers, and a firing would rotate these secrets mid-test.
const [weekly, daily, changed, changedAgain] = [
  laterSchedule({ hours: 12 }).cron,
  laterSchedule({ hours: 13, every: 'day' }).cron,
  laterSchedule({ hours: 14 }).cron,
  laterSchedule({ hours: 15 }).cron,
];

let h: Harness;
let fakes: CloudFakes;
let dir: string;

const yaml = (schedule: boolean) => `
providers:
${fakes.providers}
secrets:
  gcp-${id}:
    store: { provider: gcp, name: ${names.gcp}, topic: ${TOPIC} }
    issuer: { type: random }
${schedule ? `    schedule: { cron: "${weekly}", timezone: UTC }` : ''}
  aws-${id}:
    store: { provider: aws, name: ${names.aws} }
    issuer: { type: random }
    grace: 2h
${schedule ? `    schedule: { cron: "${weekly}", timezone: UTC }` : ''}
  conflicted-${id}:
    store: { provider: aws, name: ${names.conflicted} }
    issuer: { type: random }
${schedule ? `    schedule: { cron: "${daily}", timezone: UTC }` : ''}
`;

async function apply(text: string, ...flags: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `rekey-${randomUUID()}.yaml`);
  await writeFile(file, text);
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [...childArgs('src/cli/main.ts'), 'apply', '-f', file, ...flags], {
      env: { ...h.childEnv(), ...fakes.env, LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      // A hang guard: the first apply loads both cloud SDKs, 25 s on a machine at load 10.
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

// Each test runs `rekey apply` processes: tens of seconds each on a loaded machine.
vi.setConfig({ testTimeout: 180_000 });

beforeAll(async () => {
  fakes = await startCloudFakes();
  h = await startHarness({ label: 'rotation-metadata' });
  dir = await mkdtemp(join(tmpdir(), 'rekey-meta-'));
  // Someone turned on AWS's own rotation for this one: two rotators would fight.
  fakes.aws.model.CreateSecret({ Name: names.conflicted });
  fakes.aws.model.secrets.get(names.conflicted)!.rotation = { lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:legacy-rotator', scheduleExpression: 'rate(30 days)' };
});

afterAll(async () => {
  await h?.stop();
  await fakes?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rekey apply: rotation metadata', () => {
  it('mirrors the schedules into Secret Manager and Secrets Manager, reporting a refusal per secret', async () => {
    const result = await apply(yaml(true));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Applied as config revision');
    expect(result.stdout).toMatch(new RegExp(`rotation metadata gcp-${id}: Secret Manager rotation every 7d, next .*Z, topics ${TOPIC}`));
    expect(result.stdout).toContain(`rotation metadata aws-${id}: tagged rekey:schedule="${weekly} UTC"`);
    expect(result.stdout).toMatch(new RegExp(`! rotation metadata conflicted-${id} not updated: REKEY_ERR_INVALID.*function:legacy-rotator`));

    const gcp = fakes.gcp.model.secrets.get(names.gcp)!;
    expect(gcp.topics).toEqual([TOPIC]);
    expect(gcp.rotation?.periodSeconds).toBe(7 * 86_400);
    expect(Object.fromEntries(fakes.aws.model.secrets.get(names.aws)!.tags)).toEqual({
      [ROTATION_TAGS.rotatedBy]: 'rekey',
      [ROTATION_TAGS.schedule]: `${weekly} UTC`,
      [ROTATION_TAGS.grace]: '2h',
    });
    // The refusal did not undo the apply: every secret is managed.
    expect((await h.runtime.db.secret.findMany({ where: { name: { endsWith: id } } })).map((s) => s.name).sort()).toEqual(
      [`aws-${id}`, `conflicted-${id}`, `gcp-${id}`],
    );
  });

  it('an unchanged apply touches nothing but the write still pending; dropping the schedules clears what rekey set', async () => {
    const again = await apply(yaml(true));
    expect(again.stdout).not.toMatch(/rotation metadata (gcp|aws)-/);
    expect(again.stdout).toMatch(new RegExp(`! rotation metadata conflicted-${id} not updated \\(retried: an earlier write failed\\): REKEY_ERR_INVALID`));

    const cleared = await apply(yaml(false));
    expect(cleared.code, cleared.stderr).toBe(0);
    // The harness's workers retry marked writes at every minute (housekeeping): an apply that
    // crosses one can find a store already cleared by them (fresh-ci met it for gcp), and then
    // reports what the store shows. Either way the store ends cleared (below).
    const clearedOrNone = (secret: string, report: string) => new RegExp(`rotation metadata ${secret}-${id}: (${report}|no rotation schedule)\n`);
    expect(cleared.stdout).toMatch(clearedOrNone('gcp', 'rekey rotation schedule cleared in Secret Manager'));
    expect(cleared.stdout).toMatch(clearedOrNone('aws', 'rekey schedule tags removed'));
    expect(fakes.gcp.model.secrets.get(names.gcp)!.rotation).toBeUndefined();
    expect(fakes.gcp.model.secrets.get(names.gcp)!.topics).toEqual([TOPIC]);
    expect(fakes.aws.model.secrets.get(names.aws)!.tags.size).toBe(0);
  });

  const flaky = { gcp: `rekey-flaky-${id}`, aws: `rekey-flaky/${id}` };
  const flakyConfig = (cron = weekly) => `
providers:
${fakes.providers}
secrets:
  flaky-gcp-${id}:
    store: { provider: gcp, name: ${flaky.gcp}, topic: ${TOPIC} }
    issuer: { type: random }
    schedule: { cron: "${cron}", timezone: UTC }
  flaky-aws-${id}:
    store: { provider: aws, name: ${flaky.aws} }
    issuer: { type: random }
    schedule: { cron: "${cron}", timezone: UTC }
`;
  /** Per secret: null when nothing is left to write, else the code of the last failure. */
  const pending = async () =>
    Object.fromEntries(
      (await h.runtime.db.secret.findMany({ where: { name: { startsWith: 'flaky-' } }, orderBy: { name: 'asc' } })).map((s) => [
        s.name,
        s.metadataPendingAt === null ? null : (s.metadataError?.split(' ')[0] ?? 'pending'),
      ]),
    );
  const tags = () => Object.fromEntries(fakes.aws.model.secrets.get(flaky.aws)?.tags ?? []);
  // The harness runs a worker, whose housekeeping job may retry a write at any moment: the stores
  // refuse by permission (until allowed), so whoever tries meanwhile gets the same answer.
  const notUpdated = (secret: string) => new RegExp(`! rotation metadata ${secret}-${id} not updated( \\(retried[^)]*\\))?: REKEY_ERR_DENIED.*workers retry it every minute`);

  it('a write refused on the first apply stays pending and is retried by the next apply, not forgotten', async () => {
    fakes.gcp.deny('UpdateSecret');
    fakes.aws.deny('TagResource');
    const first = await apply(flakyConfig());
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(notUpdated('flaky-gcp'));
    expect(first.stdout).toMatch(notUpdated('flaky-aws'));
    expect(fakes.gcp.model.secrets.get(flaky.gcp)!.rotation).toBeUndefined();
    expect(tags()).toEqual({});
    expect(await pending()).toEqual({ [`flaky-aws-${id}`]: 'REKEY_ERR_DENIED', [`flaky-gcp-${id}`]: 'REKEY_ERR_DENIED' });
    expect(formatStatus(await secretStatus(h.runtime, `flaky-aws-${id}`))).toMatch(/! rotation metadata not written to the store since .*Z: REKEY_ERR_DENIED/);

    // Google allows it now; the same config again (no changes) retries both pending writes.
    fakes.gcp.allow('UpdateSecret');
    const second = await apply(flakyConfig());
    expect(second.stdout).toContain('No changes');
    expect(second.stdout).toMatch(new RegExp(`! rotation metadata flaky-aws-${id} not updated \\(retried: an earlier write failed\\): REKEY_ERR_DENIED`));
    expect(fakes.gcp.model.secrets.get(flaky.gcp)!.rotation?.periodSeconds).toBe(7 * 86_400);
    expect(await pending()).toEqual({ [`flaky-aws-${id}`]: 'REKEY_ERR_DENIED', [`flaky-gcp-${id}`]: null });
  });

  it("is retried by the workers' housekeeping each minute, with no apply; --no-rotation-metadata marks nothing", async () => {
    fakes.aws.allow('TagResource');
    // The worker's own housekeeping job, run now instead of at its next minute.
    expect(h.runtime.housekeeping.jobs().find((job) => job.name === 'rotation-metadata')?.cron).toBe(housekeepingCron('1m', 'rotation-metadata'));
    await h.runtime.housekeeping.runNow('rotation-metadata');
    expect(await pending()).toEqual({ [`flaky-aws-${id}`]: null, [`flaky-gcp-${id}`]: null });
    expect(Object.keys(tags()).sort()).toEqual(Object.values(ROTATION_TAGS).sort());
    expect(tags()[ROTATION_TAGS.schedule]).toBe(`${weekly} UTC`);
    expect(h.logs.some((line) => line.includes('rotation metadata written on retry') && line.includes(`flaky-aws-${id}`))).toBe(true);
    expect(formatStatus(await secretStatus(h.runtime, `flaky-aws-${id}`))).not.toContain('rotation metadata');
    expect((await apply(flakyConfig())).stdout).not.toContain('rotation metadata');

    const skipped = await apply(flakyConfig(changed), '--no-rotation-metadata');
    expect(skipped.stdout).toContain('Applied as config revision');
    expect(skipped.stdout).not.toContain('rotation metadata');
    expect(await pending()).toEqual({ [`flaky-aws-${id}`]: null, [`flaky-gcp-${id}`]: null });
    expect(tags()[ROTATION_TAGS.schedule]).toBe(`${weekly} UTC`);
  });

  it('--defer-rotation-metadata (Helm\'s hook, which has no cloud identity) marks the writes and makes none: the workers do', async () => {
    // Refused from now on: a write the apply made would be reported, and recorded as DENIED.
    fakes.gcp.deny('UpdateSecret');
    fakes.aws.deny('TagResource');
    const deferred = await apply(flakyConfig(changedAgain), '--defer-rotation-metadata');
    expect(deferred.code, deferred.stderr).toBe(0);
    expect(deferred.stdout).toContain('Applied as config revision');
    expect(deferred.stdout).not.toContain('rotation metadata');
    // Marked and not tried (the harness's own housekeeping may have tried since: DENIED then).
    expect(Object.values(await pending()).every((state) => state === 'pending' || state === 'REKEY_ERR_DENIED')).toBe(true);
    fakes.gcp.allow('UpdateSecret');
    fakes.aws.allow('TagResource');
    await h.runtime.housekeeping.runNow('rotation-metadata');
    expect(await pending()).toEqual({ [`flaky-aws-${id}`]: null, [`flaky-gcp-${id}`]: null });
    expect(tags()[ROTATION_TAGS.schedule]).toBe(`${changedAgain} UTC`);
  });
});
