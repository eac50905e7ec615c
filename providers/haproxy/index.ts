/**
 * The `haproxy` provider: a target that makes HAProxy accept API keys through a map
 * (key -> consumer id), changed live over the Runtime API and persisted to the map file.
 */
import { defineProvider } from '../../src/core/provider.js';
import { haproxyConfigSchema, haproxyTargetSchema, type HaproxyConfig, type HaproxyTargetParams } from './haproxy.schema.js';
import { HaproxyTarget } from './haproxy.target.js';
import { parseRuntimeEndpoint } from './runtime-api.js';

export const haproxy = defineProvider<HaproxyConfig, never, never, HaproxyTargetParams>({
  type: 'haproxy',
  summary: 'HAProxy: API keys in a map, changed live over the Runtime API and persisted to the map file',
  config: haproxyConfigSchema,
  bindings: { target: haproxyTargetSchema },
  open(config, ctx) {
    const endpoint = parseRuntimeEndpoint(config.runtimeApi);
    return {
      target({ secret, params }) {
        const map = params.map ?? config.map;
        // A binding with its own map persists to its own file unless told otherwise.
        const mapFile = params.mapFile ?? (params.map ? params.map : (config.mapFile ?? config.map));
        return new HaproxyTarget({
          provider: ctx.name,
          endpoint,
          map,
          mapFile: config.persist ? mapFile : undefined,
          probe: config.probe,
          timeoutMs: config.timeoutMs,
          fingerprint: ctx.fingerprint,
          log: ctx.log.child({ provider: ctx.name, secret }),
        });
      },
    };
  },
});

export default haproxy;
