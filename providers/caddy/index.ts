/**
 * The `caddy` provider: a target that makes Caddy accept API keys through the mappings of
 * one `map` handler, changed with the admin API and touching nothing else in the config.
 */
import { defineProvider } from '../../src/core/provider.js';
import { parseAdminEndpoint } from './admin-api.js';
import { caddyConfigSchema, caddyTargetSchema, type CaddyConfig, type CaddyTargetParams } from './caddy.schema.js';
import { CaddyTarget } from './caddy.target.js';

export const caddy = defineProvider<CaddyConfig, never, never, CaddyTargetParams>({
  type: 'caddy',
  summary: "Caddy: API keys in one map handler's mappings, changed through the admin API",
  config: caddyConfigSchema,
  bindings: { target: caddyTargetSchema },
  open(config, ctx) {
    const endpoint = parseAdminEndpoint(config.admin);
    return {
      target({ secret, params }) {
        return new CaddyTarget({
          provider: ctx.name,
          endpoint,
          handler: params.handler ?? config.handler,
          probe: config.probe,
          timeoutMs: config.timeoutMs,
          fingerprint: ctx.fingerprint,
          log: ctx.log.child({ secret }),
        });
      },
    };
  },
});

export default caddy;
