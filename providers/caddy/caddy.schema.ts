/**
 * Config of the `caddy` provider and of its target binding. rekey changes only the
 * `mappings` of one `map` handler, found by its `@id`; the rest of Caddy's config is
 * the operator's and is never rewritten.
 */
import { z } from 'zod';
import { probeSchema } from '../../src/core/kit/probe.js';

/** An `@id` in Caddy's JSON config. */
const handlerId = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be an @id of letters, digits, _ . -');

export const caddyConfigSchema = z
  .object({
    /**
     * Caddy's admin endpoint: `http://127.0.0.1:2019` or `unix:/run/caddy/admin.sock`.
     * @defaultValue `http://127.0.0.1:2019` (Caddy's default, loopback only)
     */
    admin: z
      .string()
      .regex(/^(http:\/\/[^/\s]+\/?|unix:\/\S+)$/, 'must be http://host:port or unix:/path/to/socket')
      .default('http://127.0.0.1:2019'),
    /** The `@id` of the `map` handler whose mappings hold the keys. @defaultValue `rekey_api_keys` */
    handler: handlerId.default('rekey_api_keys'),
    /** The verify probe; without it, verify() checks the live config holds the key. */
    probe: probeSchema.optional(),
    /** Milliseconds one admin request may take (a config change reloads Caddy). @defaultValue 10000 */
    timeoutMs: z.number().int().positive().max(120_000).default(10_000),
  })
  .strict();

/** Per-secret binding: a secret may use a map handler of its own. */
export const caddyTargetSchema = z
  .object({
    /** Overrides the provider's `handler` for this secret. */
    handler: handlerId.optional(),
  })
  .strict()
  .default({});

export type CaddyConfig = z.infer<typeof caddyConfigSchema>;
export type CaddyTargetParams = z.infer<typeof caddyTargetSchema>;

