/**
 * The `kong` provider: a target that makes Kong accept API keys as key-auth credentials
 * on consumers, through the Admin API.
 */
import { defineProvider } from '../../src/core/provider.js';
import { KongAdmin } from './admin-api.js';
import { kongConfigSchema, kongTargetSchema, type KongConfig, type KongTargetParams } from './kong.schema.js';
import { KongTarget } from './kong.target.js';
import { KongUsage } from './kong.usage.js';

export const kong = defineProvider<KongConfig, never, never, KongTargetParams>({
  type: 'kong',
  summary: 'Kong: API keys as key-auth credentials on consumers, through the Admin API',
  config: kongConfigSchema,
  bindings: { target: kongTargetSchema },
  usageSource: true,
  // Kong counts per consumer: a consumer's old and new keys report the same traffic.
  usagePerKey: false,
  open(config, ctx) {
    // Resolved once per instance: a missing variable fails when the config is opened, not mid-rotation.
    const admin = new KongAdmin(config.adminUrl, config.adminToken ? ctx.credential(config.adminToken) : undefined, config.timeoutMs, ctx.name);
    // One per provider instance: every binding reads the same metrics.
    const usage = new KongUsage(admin, config.metricsUrls ?? [`${config.adminUrl.replace(/\/+$/, '')}/metrics`], ctx.fingerprint);
    return {
      target: ({ secret, params }) =>
        new KongTarget({
          provider: ctx.name,
          admin,
          secret,
          consumer: params.consumer,
          createConsumers: config.createConsumers,
          probe: config.probe,
          fingerprint: ctx.fingerprint,
          usage,
          log: ctx.log.child({ secret }),
        }),
    };
  },
});

export default kong;
