/**
 * The `leaks:` section of rekey.yaml: which leak receivers `rekey server` answers, and
 * their credentials. A receiver whose section is absent answers 404. Credentials are
 * `${env:NAME}` references, resolved per request, never stored in the config.
 */
import { z } from 'zod';
import { credential } from '../core/credential.js';
import { durationSchema } from './duration.js';

const LOOPBACK_HTTP = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//;

/** A file path, an https URL, or (for a sidecar or a test) an http URL on loopback. */
const keySource = z
  .string()
  .min(1)
  .refine((s) => !s.includes('://') || s.startsWith('https://') || LOOPBACK_HTTP.test(s), {
    message: 'must be a file path or an https:// URL (http:// only on 127.0.0.1, localhost or [::1])',
  });

const github = z
  .object({
    publicKeys: keySource.describe(
      "GitHub's secret scanning public keys in GitHub's own format ({public_keys:[{key_identifier,key,is_current}]}): " +
        'a file path or https://api.github.com/meta/public_keys/secret_scanning',
    ),
    githubToken: credential()
      .optional()
      .describe('Optional token sent when fetching the keys from api.github.com (avoids its anonymous rate limit)'),
    refresh: durationSchema('5m').describe('How often the keys are fetched (or the file re-read) again: a key GitHub withdraws is refused after the next one'),
    minRefresh: durationSchema('1m').describe('At most one early fetch per this long when a request names an unknown key id (never within 10 s of any fetch)'),
  })
  .strict();

const gitguardian = z
  .object({
    token: credential().describe("The custom webhook's signature token"),
    tolerance: durationSchema('5m').describe('Requests whose Timestamp header is further than this from our clock are rejected'),
  })
  .strict();

const awsHealth = z
  .object({
    header: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name')
      .default('X-Rekey-Token')
      .describe("The API key header of the EventBridge connection (the API destination's authorization)"),
    token: credential().describe('Its value'),
  })
  .strict();

const webhook = z
  .object({
    secret: credential().describe('The Standard Webhooks signing secret (whsec_ followed by base64)'),
    tolerance: durationSchema('5m').describe('Requests whose webhook-timestamp is further than this from our clock are rejected'),
  })
  .strict();

const rateLimit = z
  .object({
    max: z.number().int().min(1).max(1_000_000).default(60).describe('Authenticated requests a receiver accepts at once and per window (the bucket size)'),
    window: durationSchema('1m').describe('The bucket refills max requests per this long'),
  })
  .strict();

export const leaksSchema = z
  .object({
    github: github.optional().describe("GitHub secret scanning partner alerts: POST /webhooks/github-secret-scanning"),
    gitguardian: gitguardian.optional().describe("GitGuardian's custom webhook: POST /webhooks/gitguardian"),
    awsHealth: awsHealth.optional().describe('AWS Health AWS_RISK_CREDENTIALS_EXPOSED via an EventBridge API destination: POST /webhooks/aws-health'),
    webhook: webhook.optional().describe('A generic receiver signed per Standard Webhooks: POST /webhooks/leaks'),
    rateLimit: rateLimit
      .prefault({})
      .describe("Per receiver, per server process, charged only by requests that passed the receiver's authentication"),
  })
  .strict();

export type LeaksConfig = z.infer<typeof leaksSchema>;
export type GithubConfig = NonNullable<LeaksConfig['github']>;
export type GitguardianConfig = NonNullable<LeaksConfig['gitguardian']>;
export type AwsHealthConfig = NonNullable<LeaksConfig['awsHealth']>;
export type WebhookConfig = NonNullable<LeaksConfig['webhook']>;
