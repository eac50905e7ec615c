/**
 * Config of the `haproxy` provider (a `providers:` entry) and of its target binding.
 * Nothing here is secret: access to the Runtime API is controlled by the socket's
 * file permissions or by where its TCP port listens (see README.md).
 */
import { z } from 'zod';
import { absolutePath } from '../../src/core/kit/paths.js';
import { probeSchema } from '../../src/core/kit/probe.js';

/**
 * A map's name on the Runtime API is its path, sent as one argument of `add map`, `del map`...
 * The API splits commands on `;` and newlines and arguments on spaces, and gives `#` and `\`
 * their own meanings: a name holds none of them.
 */
const mapName = absolutePath.regex(/^[\w./@+-]+$/, 'a map name holds only letters, digits and . _ / @ + - (the Runtime API splits commands on ; and spaces)');

/** A stick table's name: a backend or `peers` table name, one argument of `show table`. */
const tableName = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a table name holds only letters, digits and _ . : -');

/** `unix:/run/haproxy/admin.sock` or `tcp://127.0.0.1:9999`. */
export const runtimeApiSchema = z
  .string()
  .regex(/^(unix:\/\S+|tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5})$/, 'must be unix:/path/to/socket or tcp://host:port');

export const haproxyConfigSchema = z
  .object({
    /** Where HAProxy's Runtime API listens (`stats socket ... level operator`): required for map bindings. */
    runtimeApi: runtimeApiSchema.optional(),
    /** The map as haproxy.cfg loads it (`map(/etc/haproxy/api-keys.map)`): its name on the Runtime API. Required for map bindings unless each names its own. */
    map: mapName.optional(),
    /** HAProxy's master CLI (`haproxy -W -S /run/haproxy-master.sock`): required for `keyFiles` bindings, which reload through it. */
    masterCli: runtimeApiSchema.optional(),
    /**
     * The file rekey rewrites after each change so a restart keeps the keys.
     * @defaultValue the same path as `map` (rekey runs beside HAProxy)
     */
    mapFile: absolutePath.optional(),
    /** Rewrite the map file after each change; false when rekey cannot reach HAProxy's disk. @defaultValue true */
    persist: z.boolean().default(true),
    /** The verify probe; without it, verify() checks the live map instead. */
    probe: probeSchema.optional(),
    /**
     * The usage source: the stick tables haproxy.cfg tracks accepted keys in (README.md "Usage").
     * Without it the target reports no usage and cannot throttle.
     */
    stickTables: z
      .object({
        /** Keyed by the key: `store http_req_cnt,http_err_cnt` (and the rate the throttled class limits on). */
        keys: tableName,
        /** Keyed by `<key>@<network>`: `store http_req_cnt`. */
        sources: tableName,
      })
      .strict()
      .optional(),
    /** Milliseconds one Runtime API command may take. @defaultValue 5000 */
    timeoutMs: z.number().int().positive().max(60_000).default(5000),
  })
  .strict();

/** Per-secret binding: a secret may keep its keys in a map of its own (recommended, see README). */
export const haproxyTargetSchema = z
  .object({
    /** Overrides the provider's `map` for this secret. */
    map: mapName.optional(),
    /** Overrides the provider's `mapFile` for this secret. @defaultValue this binding's `map` */
    mapFile: absolutePath.optional(),
    /**
     * Public key files for `jwt_verify` (a `publish: jwks` target of a jwt-signing-key secret):
     * the live public keys as PEM, newest first, one per file; files beyond them are left empty.
     */
    keyFiles: z.array(absolutePath).min(2).max(8).optional(),
  })
  .strict()
  .refine((binding) => !binding.keyFiles || (!binding.map && !binding.mapFile), { message: 'a binding has keyFiles or a map, not both', path: ['keyFiles'] })
  .default({});

export type HaproxyConfig = z.infer<typeof haproxyConfigSchema>;
export type HaproxyTargetParams = z.infer<typeof haproxyTargetSchema>;
