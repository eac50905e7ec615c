/**
 * The `haproxy` provider: a target that makes HAProxy accept API keys through a map
 * (key -> consumer id), changed live over the Runtime API and persisted to the map file; or,
 * with `keyFiles`, the public keys `jwt_verify` checks tokens against, reloaded through the
 * master CLI.
 */
import { RekeyError } from '../../src/core/errors.js';
import { defineProvider } from '../../src/core/provider.js';
import { haproxyConfigSchema, haproxyTargetSchema, type HaproxyConfig, type HaproxyTargetParams } from './haproxy.schema.js';
import { HaproxyKeyFilesTarget } from './haproxy.keyfiles.target.js';
import { HaproxyTarget } from './haproxy.target.js';
import { HaproxyUsage } from './haproxy.usage.js';
import { parseRuntimeEndpoint } from './runtime-api.js';

export const haproxy = defineProvider<HaproxyConfig, never, never, HaproxyTargetParams>({
  type: 'haproxy',
  summary: 'HAProxy: API keys in a map (changed live over the Runtime API, persisted to the map file), or public key files for jwt_verify (reloaded)',
  config: haproxyConfigSchema,
  bindings: { target: haproxyTargetSchema },
  // Key files hold one signing key's live public keys, rewritten whole (the rest emptied) at each deploy; maps are shared.
  targetOwns: ({ keyFiles }) => keyFiles ?? [],
  throttles: true,
  usageSource: (config) => config.stickTables !== undefined || 'stickTables: (the stick tables to read, providers/haproxy/README.md "Usage")',
  // What open() below refuses, refused at apply instead.
  targetProblem: (params, _secret, config) => {
    const what = lacking(params, config);
    return what && `target needs ${what}`;
  },
  open(config, ctx) {
    const missing = (secret: string, what: string) => new RekeyError('REKEY_ERR_CONFIG', `secrets.${secret}: target ${ctx.name} needs ${what}`);
    // One per provider instance: every binding reads the same stick tables.
    const usage = config.stickTables && new HaproxyUsage(config.stickTables, ctx.fingerprint);
    return {
      target({ secret, params }) {
        const log = ctx.log.child({ secret });
        if (params.keyFiles) {
          if (!config.masterCli) throw missing(secret, 'masterCli (the master CLI reloads HAProxy after the key files change)');
          return new HaproxyKeyFilesTarget({ provider: ctx.name, masterCli: parseRuntimeEndpoint(config.masterCli), keyFiles: params.keyFiles, timeoutMs: config.timeoutMs, log });
        }
        const map = params.map ?? config.map;
        if (!map) throw missing(secret, 'a map (in the binding or the provider)');
        if (!config.runtimeApi) throw missing(secret, 'runtimeApi');
        // A binding with its own map persists to its own file unless told otherwise.
        const mapFile = params.mapFile ?? (params.map ? params.map : (config.mapFile ?? config.map));
        return new HaproxyTarget({
          provider: ctx.name,
          endpoint: parseRuntimeEndpoint(config.runtimeApi),
          map,
          mapFile: config.persist ? mapFile : undefined,
          probe: config.probe,
          timeoutMs: config.timeoutMs,
          fingerprint: ctx.fingerprint,
          log,
          usage,
        });
      },
    };
  },
});

export default haproxy;

/** What a binding needs and neither it nor its provider entry gives (the first missing), or undefined. */
function lacking(params: HaproxyTargetParams, config: HaproxyConfig): string | undefined {
  if (params.keyFiles) return config.masterCli ? undefined : "the provider's masterCli (it reloads HAProxy after the key files change)";
  if (!(params.map ?? config.map)) return 'a map (in the binding or the provider)';
  return config.runtimeApi ? undefined : "the provider's runtimeApi";
}
