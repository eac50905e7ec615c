/**
 * Config of the `nginx` provider and of its target binding. rekey writes one map file
 * that nginx.conf includes inside a `map` block, tests the whole config with `nginx -t`
 * and reloads the running master with SIGHUP.
 */
import { z } from 'zod';
import { absolutePath } from '../../src/core/kit/paths.js';
import { probeSchema } from '../../src/core/kit/probe.js';

export const nginxConfigSchema = z
  .object({
    /** The map file nginx.conf includes (`map $http_x_api_key $consumer { default ""; include <map>; }`). */
    map: absolutePath,
    /** The main config `nginx -t` checks (the one the running master loaded). @defaultValue `/etc/nginx/nginx.conf` */
    config: absolutePath.default('/etc/nginx/nginx.conf'),
    /** nginx's prefix (`-p`), when the running master was started with one. */
    prefix: absolutePath.optional(),
    /** The master's PID file (the `pid` directive). @defaultValue `/run/nginx.pid` */
    pidFile: absolutePath.default('/run/nginx.pid'),
    /** The nginx binary. @defaultValue `nginx` (from PATH) */
    binary: z.string().regex(/^\S+$/).default('nginx'),
    /** Milliseconds to wait for the master to start workers on the new config. @defaultValue 10000 */
    reloadTimeoutMs: z.number().int().positive().max(120_000).default(10_000),
    /** Milliseconds to wait, after that, for the old workers to finish their requests and exit. @defaultValue 2000 */
    drainTimeoutMs: z.number().int().nonnegative().max(120_000).default(2000),
    /** The verify probe; without it, verify() checks the map file holds the key. */
    probe: probeSchema.optional(),
  })
  .strict();

/** Per-secret binding: a secret may keep its keys in a map file of its own. */
export const nginxTargetSchema = z
  .object({
    /** Overrides the provider's `map` for this secret. */
    map: absolutePath.optional(),
  })
  .strict()
  .default({});

export type NginxConfig = z.infer<typeof nginxConfigSchema>;
export type NginxTargetParams = z.infer<typeof nginxTargetSchema>;

