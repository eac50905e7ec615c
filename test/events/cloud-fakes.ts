/**
 * Both cloud store fakes for end-to-end tests and benches: AWS Secrets Manager (JSON 1.1 over
 * HTTP) and Google Secret Manager (gRPC), each on 127.0.0.1, plus the environment the AWS SDK's
 * default chain needs to stay on loopback (dummy static keys, no instance metadata), restored on
 * close(). `providers` is the `providers:` entries pointing rekey at them.
 */
import { startFakeSecretsManager, type FakeSecretsManager } from '../../providers/aws-secrets-manager/test/fake/secrets-manager-fake.js';
import { startFakeSecretManager, type FakeSecretManager } from '../../providers/gcp-secret-manager/test/fake/secret-manager-fake.js';
import { LOOPBACK_AWS_ENV, useLoopbackAwsEnv } from '../support/aws-env.js';

export const GCP_PROJECT = 'rekey-test';

export interface CloudFakes {
  aws: FakeSecretsManager;
  gcp: FakeSecretManager;
  /** YAML lines for `providers:` (indented two spaces): instances `aws` and `gcp`. */
  providers: string;
  /** The environment a child process (`rekey apply`) needs to reach the AWS fake. */
  env: Record<string, string | undefined>;
  close(): Promise<void>;
}

export async function startCloudFakes(): Promise<CloudFakes> {
  const restoreEnv = useLoopbackAwsEnv();
  const aws = await startFakeSecretsManager();
  const gcp = await startFakeSecretManager(GCP_PROJECT);
  return {
    aws,
    gcp,
    providers: [
      `  aws: { type: aws-secrets-manager, region: us-east-1, endpoint: "${aws.endpoint}" }`,
      `  gcp: { type: gcp-secret-manager, project: ${GCP_PROJECT}, projectNumber: "${gcp.model.projectNumber}", apiEndpoint: 127.0.0.1, port: ${gcp.port}, insecure: true }`,
    ].join('\n'),
    env: LOOPBACK_AWS_ENV,
    async close() {
      await aws.close();
      await gcp.close();
      restoreEnv();
    },
  };
}
