/**
 * Config of the `kong` provider (a `providers:` entry) and of its target binding.
 * The Admin API token is a credential() reference; everything else is public.
 */
import { z } from 'zod';
import { credential } from '../../src/core/credential.js';
import { probeSchema } from '../../src/core/kit/probe.js';

export const kongConfigSchema = z
  .object({
    /** Kong's Admin API, e.g. `https://kong-admin.internal:8444` (a path prefix such as `/default` for a workspace is kept). */
    adminUrl: z.url({ protocol: /^https?$/ }),
    /** Sent as `Kong-Admin-Token` (Kong Enterprise RBAC, or a token checked by a proxy in front of the Admin API). */
    adminToken: credential().optional(),
    /** Create the consumer when it does not exist yet. @defaultValue true */
    createConsumers: z.boolean().default(true),
    /**
     * The verify probe through Kong's proxy. Kong's key-auth reads the `apikey` header by default,
     * so set `header: apikey` unless the plugin's `key_names` say otherwise. Without it, verify()
     * reads the credential back from the Admin API instead.
     */
    probe: probeSchema.optional(),
    /**
     * Kong's Prometheus metrics, one URL per node (each node counts its own requests): the Status
     * API's `/metrics` (e.g. `http://kong-node-1:8100/metrics`) or the Admin API's. Read only when
     * the provider's `usage: { interval }` is set (README.md "Usage"). @defaultValue the Admin API's /metrics
     */
    metricsUrls: z.array(z.url({ protocol: /^https?$/ })).min(1).optional(),
    /** Milliseconds one Admin API request may take. @defaultValue 5000 */
    timeoutMs: z.number().int().positive().max(60_000).default(5000),
  })
  .strict();

/** Per-secret binding. */
export const kongTargetSchema = z
  .object({
    /**
     * The consumer (username or id) that owns the keys of this secret. Without it, each key goes
     * to the consumer named by the version (the secret's name, or the client of a per-client key).
     */
    consumer: z.string().min(1).max(128).optional(),
  })
  .strict()
  .default({});

export type KongConfig = z.infer<typeof kongConfigSchema>;
export type KongTargetParams = z.infer<typeof kongTargetSchema>;
