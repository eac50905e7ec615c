/**
 * The `nginx` provider: a target that makes nginx accept API keys through an included map
 * file, written atomically, tested with `nginx -t` and applied by a graceful reload.
 */
import { defineProvider } from '../../src/core/provider.js';
import { nginxConfigSchema, nginxTargetSchema, type NginxConfig, type NginxTargetParams } from './nginx.schema.js';
import { NginxTarget } from './nginx.target.js';

export const nginx = defineProvider<NginxConfig, never, never, NginxTargetParams>({
  type: 'nginx',
  summary: 'nginx: API keys in an included map file, tested with nginx -t and applied by a graceful reload',
  config: nginxConfigSchema,
  bindings: { target: nginxTargetSchema },
  open(config, ctx) {
    const process = {
      binary: config.binary,
      config: config.config,
      prefix: config.prefix,
      pidFile: config.pidFile,
      reloadTimeoutMs: config.reloadTimeoutMs,
      drainTimeoutMs: config.drainTimeoutMs,
    };
    return {
      target({ secret, params }) {
        return new NginxTarget({
          provider: ctx.name,
          map: params.map ?? config.map,
          process,
          probe: config.probe,
          fingerprint: ctx.fingerprint,
          log: ctx.log.child({ secret }),
        });
      },
    };
  },
});

export default nginx;
