/**
 * Config of the `webhook` provider (a `providers:` entry) and of its target binding.
 * The signing secret is a credential() reference (`whsec_<base64>`, Standard Webhooks).
 */
import { z } from 'zod';
import { credential } from '../../src/core/credential.js';
import { checkOutboundUrl, insecureFlag } from '../../src/core/kit/outbound-url.js';

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

export const webhookConfigSchema = z
  .object({
    /** Where version events are POSTed: https, unless `insecure`. */
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
     * what the receiver holds now. Without it, the target cannot be inspected and verify() trusts
     * the 2xx of the delivery.
     */
    state: z.url({ protocol: /^https?$/ }).optional(),
    /** Allow plain http for `url` and `state` (a test receiver, a sidecar). Link-local and metadata addresses stay refused. @defaultValue false */
    insecure: insecureFlag,
    /** Milliseconds one request may take. A failed delivery is retried by the engine (the secret's `retry`), not here. @defaultValue 5000 */
    timeoutMs: z.number().int().positive().max(60_000).default(5000),
  })
  .strict()
  .superRefine((config, ctx) => {
    checkOutboundUrl(config.url, config.insecure, ['url'], ctx);
    checkOutboundUrl(config.state, config.insecure, ['state'], ctx);
    const url = new URL(config.url);
    if (config.includeValue && url.protocol !== 'https:' && !LOOPBACK.has(url.hostname)) {
      ctx.addIssue({ code: 'custom', path: ['includeValue'], message: 'includeValue sends the credential itself: the url must be https (plain http only to loopback)' });
    }
  });

/** Per-secret binding: nothing to set yet. */
export const webhookTargetSchema = z.object({}).strict().default({});

export type WebhookConfig = z.infer<typeof webhookConfigSchema>;
export type WebhookTargetParams = z.infer<typeof webhookTargetSchema>;
