/**
 * Config of the `webhook` provider (a `providers:` entry) and of its target binding.
 * The signing secret is a credential() reference (`whsec_<base64>`, Standard Webhooks).
 */
import { z } from 'zod';
import { credential } from '../../src/core/credential.js';

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

export const webhookConfigSchema = z
  .object({
    /** Where version events are POSTed. */
    url: z.url({ protocol: /^https?$/ }),
    /** The Standard Webhooks signing secret, `whsec_` + base64 of 24-64 random bytes, as `${env:NAME}`. */
    secret: credential(),
    /**
     * Put the value itself into `deployed` events. Off by default: the receiver, its logs and
     * every proxy on the way then hold a live credential (see README). Needs https off loopback.
     * @defaultValue false
     */
    includeValue: z.boolean().default(false),
    /**
     * A URL answering a signed GET with `{"deployed":[{"versionId","fingerprint"?,"consumer"?}]}`:
     * what the receiver holds now. Without it, listDeployed() reports nothing and verify() trusts
     * the 2xx of the delivery.
     */
    state: z.url({ protocol: /^https?$/ }).optional(),
    /** Milliseconds one delivery attempt may take. @defaultValue 5000 */
    timeoutMs: z.number().int().positive().max(60_000).default(5000),
    /** Delivery attempts inside one call, with exponential backoff, bounded by the call's timeout. */
    retry: z
      .object({
        /** @defaultValue 5 */
        attempts: z.number().int().min(1).max(20).default(5),
        /** First delay; doubles each attempt (with jitter). @defaultValue 500 */
        initialDelayMs: z.number().int().min(1).max(60_000).default(500),
        /** Cap of one delay, also of a Retry-After the receiver asks for. @defaultValue 10000 */
        maxDelayMs: z.number().int().min(1).max(300_000).default(10_000),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const url = new URL(config.url);
    if (config.includeValue && url.protocol !== 'https:' && !LOOPBACK.has(url.hostname)) {
      ctx.addIssue({ code: 'custom', path: ['includeValue'], message: 'includeValue sends the credential itself: the url must be https (plain http only to loopback)' });
    }
  });

/** Per-secret binding: nothing to set yet. */
export const webhookTargetSchema = z.object({}).strict().default({});

export type WebhookConfig = z.infer<typeof webhookConfigSchema>;
export type WebhookTargetParams = z.infer<typeof webhookTargetSchema>;
