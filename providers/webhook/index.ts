/**
 * The `webhook` provider: a target that POSTs version events (deployed, retired) to a URL,
 * signed per the Standard Webhooks spec and retried with backoff.
 */
import { defineProvider } from '../../src/core/provider.js';
import { signingKey } from '../../src/core/kit/standard-webhooks.js';
import { webhookConfigSchema, webhookTargetSchema, type WebhookConfig, type WebhookTargetParams } from './webhook.schema.js';
import { WebhookTarget } from './webhook.target.js';

export { signedHeaders } from '../../src/core/kit/standard-webhooks.js';

export const webhook = defineProvider<WebhookConfig, never, never, WebhookTargetParams>({
  type: 'webhook',
  summary: 'A signed webhook (Standard Webhooks): POSTs version events to a URL, retried with backoff',
  config: webhookConfigSchema,
  bindings: { target: webhookTargetSchema },
  open(config, ctx) {
    // Decoded once: a malformed secret fails when the config is opened, not mid-rotation.
    const key = signingKey(ctx.credential(config.secret), `providers.${ctx.name}.secret`);
    return {
      target: ({ secret }) => new WebhookTarget({ provider: ctx.name, config, key, log: ctx.log.child({ secret }) }),
    };
  },
});

export default webhook;
