/**
 * `aws-secrets-manager`: a store on AWS Secrets Manager. See README.md for the config, the IAM
 * policy it needs and the calls it makes per rotation.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { defineProvider } from '../../src/core/provider.js';
import { AwsSecretsManagerStore } from './aws-secrets-manager.store.js';
import {
  awsSecretsManagerConfig,
  awsSecretsManagerStoreBinding,
  type AwsSecretsManagerConfig,
  type AwsSecretsManagerStoreBinding,
} from './aws-secrets-manager.schema.js';

export { AwsSecretsManagerStore, ROTATION_TAGS, rekeyStages, versionIdOf } from './aws-secrets-manager.store.js';
export { awsSecretsManagerConfig, awsSecretsManagerStoreBinding, type AwsSecretsManagerConfig, type AwsSecretsManagerStoreBinding };

/** What AWS allows in a secret's name (CreateSecret's `Name`). */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;

export default defineProvider<AwsSecretsManagerConfig, AwsSecretsManagerStoreBinding>({
  type: 'aws-secrets-manager',
  summary: 'Store on AWS Secrets Manager: versions staged with AWSPENDING, AWSCURRENT and AWSPREVIOUS',
  // 50 writes a second per region, 3 writes a rotation (+1 at removal): see README.md.
  fleetStartsPerSecond: 10,
  rotationMetadata: true,
  config: awsSecretsManagerConfig,
  bindings: { store: awsSecretsManagerStoreBinding },
  // Two managed secrets on one AWS secret would move each other's AWSCURRENT.
  storeOwns: ({ name }, client) => [client ? `${name}/${client}` : name],
  // A name AWS does not allow, or <arn>/<client>, is no secret AWS can find or create: every rotation would fail.
  storeProblem: ({ name }, client) => {
    if (name.startsWith('arn:')) return client ? "name is a full ARN: with clients: give the secret's name, so each client's secret is <name>/<client>" : undefined;
    return SECRET_NAME.test(client ? `${name}/${client}` : name) ? undefined : `name must be a full ARN or an AWS secret name: 1-512 characters${client ? ' with /<client>' : ''} of A-Z a-z 0-9 / _ + = . @ -`;
  },
  open(config, ctx) {
    // One client per provider instance: it holds the credential chain's cache and the keep-alive pool.
    const client = new SecretsManagerClient({
      region: config.region,
      endpoint: config.endpoint,
      maxAttempts: config.maxAttempts,
    });
    return {
      store: ({ secret, params, client: perClient }) =>
        new AwsSecretsManagerStore({
          client,
          provider: ctx.name,
          // Per-client keys: one AWS secret per client, <name>/<client>.
          name: perClient ? `${params.name}/${perClient}` : params.name,
          field: params.field,
          kmsKeyId: config.kmsKeyId,
          fingerprint: ctx.fingerprint,
          log: ctx.log.child({ secret }),
        }),
      close: () => {
        client.destroy();
        return Promise.resolve();
      },
    };
  },
});
