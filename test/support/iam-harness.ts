// The aws-iam-access-key issuer against the fake IAM (the official SDK on the wire), with the
// memory store `mem` and target `edge` recording into a journal (issuer-lost-answer, leak-recovery).
import { randomUUID } from 'node:crypto';
import { startFakeIam, type FakeIam } from '../../providers/aws-iam-access-key/test/fake/iam-server.js';
import { useLoopbackAwsEnv } from './aws-env.js';
import { startHarness, type Harness } from './harness.js';

export interface IamHarness {
  h: Harness;
  iam: FakeIam;
  /** Stops the harness and the fake, and puts back the AWS environment. */
  stop(): Promise<void>;
}

/** The fake IAM, the loopback AWS environment with its caller key, and a harness. */
export async function startIamHarness(label: string): Promise<IamHarness> {
  const iam = await startFakeIam();
  const restoreEnv = useLoopbackAwsEnv({ AWS_ACCESS_KEY_ID: iam.callerKeyId });
  let h: Harness;
  try {
    h = await startHarness({ label });
  } catch (error) {
    await iam.close();
    restoreEnv();
    throw error;
  }
  return {
    h,
    iam,
    async stop() {
      await h.stop();
      await iam.close();
      restoreEnv();
    },
  };
}

/**
 * A user of its own on the fake IAM (no keys yet) and rekey.yaml for `secret`, issued as that
 * user's access keys, kept in `mem` and delivered to `edge` (both on `journalName`), grace 1h.
 * `settings` are the secret's other lines (`timeout: 3s`, `retry: { attempts: 1, backoff: 50ms }`).
 */
export function iamSecret(iam: FakeIam, journalName: string, secret: string, settings: readonly string[]): { userName: string; yaml: string } {
  const userName = `ci-${randomUUID().slice(0, 8)}`;
  iam.users.set(userName, []);
  const yaml = `
providers:
  iam: { type: aws-iam-access-key, endpoint: ${iam.endpoint} }
  mem: { type: memory, journal: ${journalName} }
  edge: { type: memory, journal: ${journalName} }
secrets:
  ${secret}:
    store: { provider: mem }
    issuer: { provider: iam, userName: ${userName} }
    targets: [edge]
    grace: 1h
${settings.map((line) => `    ${line}\n`).join('')}`;
  return { userName, yaml };
}
