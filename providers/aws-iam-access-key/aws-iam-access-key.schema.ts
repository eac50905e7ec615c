import { z } from 'zod';

/** The `providers:` entry. Credentials come from the AWS SDK's default chain (IRSA, instance role, env). */
export const awsIamAccessKeyConfig = z
  .object({
    /** Region the SDK signs for; IAM is global, its endpoint lives in us-east-1 (aws partition). @defaultValue 'us-east-1' */
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/).default('us-east-1'),
    /** Endpoint override (a VPC endpoint, a test server). @defaultValue the SDK's IAM endpoint */
    endpoint: z.url().optional(),
  })
  .strict();
export type AwsIamAccessKeyConfig = z.infer<typeof awsIamAccessKeyConfig>;

/** Per-secret issuer parameters. */
export const awsIamAccessKeyIssuerBinding = z
  .object({
    /** The IAM user whose access key rotates. */
    userName: z.string().regex(/^[\w+=,.@-]{1,64}$/, 'an IAM user name'),
    /**
     * What revoke does: `delete` (UpdateAccessKey Inactive, then DeleteAccessKey) or `deactivate`
     * (Inactive only: the key can be re-activated for forensics; the next issue deletes the oldest
     * inactive key when the user is at the two-key limit). @defaultValue 'delete'
     */
    onRevoke: z.enum(['delete', 'deactivate']).default('delete'),
  })
  .strict();
export type AwsIamAccessKeyIssuerBinding = z.infer<typeof awsIamAccessKeyIssuerBinding>;
