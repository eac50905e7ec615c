/**
 * Config of an `aws-secrets-manager` provider instance and of a secret's store binding.
 * Credentials are never configured here: the SDK's default chain finds them (environment,
 * shared config/SSO, web identity / IRSA, ECS or EC2 instance roles).
 */
import { z } from 'zod';

/** The `providers:` entry: `{ type: aws-secrets-manager, region: eu-west-1 }`. */
export const awsSecretsManagerConfig = z
  .object({
    /** AWS region of the secrets, e.g. `eu-west-1`. */
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region such as eu-west-1'),
    /** Overrides the service endpoint (a VPC endpoint, or a local fake in tests). @defaultValue the regional endpoint */
    endpoint: z.url().optional(),
    /**
     * KMS key (id, ARN or alias) used when rekey has to create a secret. Existing secrets keep their key.
     * @defaultValue the account's `aws/secretsmanager` key
     */
    kmsKeyId: z.string().min(1).max(2048).optional(),
    /**
     * Attempts per API call, counting the first, for the SDK's own retries of throttling, 5xx and
     * dropped connections. Kept small: rekey retries the whole step with its own backoff, so the SDK
     * must not sit on a throttled call for minutes. @defaultValue 3
     */
    maxAttempts: z.number().int().min(1).max(10).default(3),
  })
  .strict();

export type AwsSecretsManagerConfig = z.infer<typeof awsSecretsManagerConfig>;

/** A secret's `store:` binding: `{ provider: aws-prod, name: prod/payments/api-key, field: apiKey }`. */
export const awsSecretsManagerStoreBinding = z
  .object({
    /** The AWS secret's name or full ARN. */
    name: z.string().min(1).max(2048),
    /**
     * When set, the secret holds a JSON object and only this field is rotated; the other fields are
     * copied from the current version into every new one. @defaultValue the whole SecretString
     */
    field: z.string().min(1).max(256).optional(),
  })
  .strict();

export type AwsSecretsManagerStoreBinding = z.infer<typeof awsSecretsManagerStoreBinding>;
