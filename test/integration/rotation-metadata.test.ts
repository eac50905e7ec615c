/**
 * `rekey apply` (the real CLI, in a child process) mirrors each added or changed secret's schedule
 * into its store's own rotation metadata: Secret Manager's rotation and topic, Secrets Manager
 * tags. A store that refuses is reported for its secret, and the apply stands.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROTATION_TAGS } from '../../providers/aws-secrets-manager/index.js';
import { GCP_PROJECT, startCloudFakes, type CloudFakes } from '../events/cloud-fakes.js';
import { startHarness, type Harness } from '../support/harness.js';

const TOPIC = `projects/${GCP_PROJECT}/topics/rekey-rotations`;
const id = randomUUID().slice(0, 8);
const names = { gcp: `rekey-meta-${id}`, aws: `rekey-meta/${id}`, conflicted: `rekey-meta/conflicted-${id}` };

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
${schedule ? '    schedule: { cron: "0 3 * * 1", timezone: UTC }' : ''}
  aws-${id}:
    store: { provider: aws, name: ${names.aws} }
    issuer: { type: random }
    grace: 2h
${schedule ? '    schedule: { cron: "0 3 * * 1", timezone: UTC }' : ''}
  conflicted-${id}:
    store: { provider: aws, name: ${names.conflicted} }
    issuer: { type: random }
${schedule ? '    schedule: { cron: "0 4 * * *", timezone: UTC }' : ''}
`;

async function apply(text: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `rekey-${randomUUID()}.yaml`);
  await writeFile(file, text);
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'apply', '-f', file], {
      env: { ...h.childEnv(), ...fakes.env, LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

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
    expect(result.stdout).toContain(`rotation metadata aws-${id}: tagged rekey:schedule="0 3 * * 1 UTC"`);
    expect(result.stdout).toMatch(new RegExp(`! rotation metadata conflicted-${id} not updated: REKEY_ERR_INVALID.*function:legacy-rotator`));

    const gcp = fakes.gcp.model.secrets.get(names.gcp)!;
    expect(gcp.topics).toEqual([TOPIC]);
    expect(gcp.rotation?.periodSeconds).toBe(7 * 86_400);
    expect(Object.fromEntries(fakes.aws.model.secrets.get(names.aws)!.tags)).toEqual({
      [ROTATION_TAGS.rotatedBy]: 'rekey',
      [ROTATION_TAGS.schedule]: '0 3 * * 1 UTC',
      [ROTATION_TAGS.grace]: '2h',
    });
    // The refusal did not undo the apply: every secret is managed.
    expect((await h.runtime.db.secret.findMany({ where: { name: { endsWith: id } } })).map((s) => s.name).sort()).toEqual(
      [`aws-${id}`, `conflicted-${id}`, `gcp-${id}`],
    );
  });

  it('an unchanged apply touches nothing; dropping the schedules clears what rekey set', async () => {
    const again = await apply(yaml(true));
    expect(again.stdout).not.toContain('rotation metadata');

    const cleared = await apply(yaml(false));
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toContain(`rotation metadata gcp-${id}: rekey rotation schedule cleared in Secret Manager`);
    expect(cleared.stdout).toContain(`rotation metadata aws-${id}: rekey schedule tags removed`);
    expect(fakes.gcp.model.secrets.get(names.gcp)!.rotation).toBeUndefined();
    expect(fakes.gcp.model.secrets.get(names.gcp)!.topics).toEqual([TOPIC]);
    expect(fakes.aws.model.secrets.get(names.aws)!.tags.size).toBe(0);
  });
});
