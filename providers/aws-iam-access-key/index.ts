/**
 * aws-iam-access-key: rotates an IAM user's access key within AWS's two-keys-per-user limit;
 * revoke deactivates then deletes the old key.
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { defineProvider } from '../../src/core/provider.js';
import { AwsIamAccessKeyIssuer } from './aws-iam-access-key.issuer.js';
import {
  awsIamAccessKeyConfig,
  awsIamAccessKeyIssuerBinding,
  type AwsIamAccessKeyConfig,
  type AwsIamAccessKeyIssuerBinding,
} from './aws-iam-access-key.schema.js';


export default defineProvider<AwsIamAccessKeyConfig, never, AwsIamAccessKeyIssuerBinding>({
  type: 'aws-iam-access-key',
  summary: 'AWS IAM user access keys: create beside the live key, deactivate and delete the old one',
  config: awsIamAccessKeyConfig,
  bindings: { issuer: awsIamAccessKeyIssuerBinding },
  // The user's two keys are one secret's overlap (and its journal tag one secret's): a second secret on it hits the limit.
  issuerOwns: ({ userName }) => [userName],
  open(config, ctx) {
    // One client per instance; credentials from the SDK's default chain, resolved per request.
    // maxAttempts 1: core retries retryable errors with its own backoff; SDK retries would multiply them.
    const iam = new IAMClient({ region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}), maxAttempts: 1 });
    return {
      issuer: ({ secret, params }) => new AwsIamAccessKeyIssuer(ctx.name, iam, params, ctx.log.child({ secret })),
      close() {
        iam.destroy();
        return Promise.resolve();
      },
    };
  },
});
