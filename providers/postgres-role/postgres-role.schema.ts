import { z } from 'zod';
import { credential } from '../../src/core/credential.js';

// Unquoted-identifier shape, so names never need quoting games; 55 leaves room for `_a`/`_b`.
const ROLE = /^[a-z_][a-z0-9_]{0,54}$/;
const roleName = z
  .string()
  .regex(ROLE, 'lower-case letters, digits and _, at most 55, not starting with a digit')
  .refine((name) => name !== 'postgres' && !name.startsWith('pg_'), 'postgres and pg_* roles are never managed by rekey');

/** The `providers:` entry: the managing connection to one PostgreSQL server. */
export const postgresRoleConfig = z
  .object({
    /**
     * Managing connection URL as a reference, e.g. `${env:PG_ADMIN_URL}` holding
     * `postgresql://rekey_manager:<password>@db.internal:5432/postgres?sslmode=verify-full`.
     */
    url: credential(),
    /**
     * The address clients (and verify) connect to, without credentials, when it differs from the
     * managing URL's host (a pooler, a read/write endpoint). @defaultValue the managing URL's host, port, database and parameters
     */
    clientUrl: z
      .url({ protocol: /^postgres(ql)?$/ })
      .refine((text) => {
        const url = new URL(text);
        return !url.username && !url.password && !['user', 'password', 'sslpassword'].some((name) => url.searchParams.has(name));
      }, 'must not hold credentials')
      .optional(),
  })
  .strict();
export type PostgresRoleConfig = z.infer<typeof postgresRoleConfig>;

/** Per-secret issuer parameters. */
export const postgresRoleIssuerBinding = z
  .object({
    /**
     * `alternating`: the base name of two login roles `<role>_a` and `<role>_b`, used in turn.
     * `single`: the login role itself.
     */
    role: roleName,
    /**
     * `alternating` keeps the old password valid during the overlap (two roles); `single` changes
     * one role's password in place, so the old one stops working at issue time.
     * @defaultValue 'alternating'
     */
    strategy: z.enum(['alternating', 'single']).default('alternating'),
    /** Value format: `json` `{"username","password"}` or a full connection `url`. @defaultValue 'json' */
    format: z.enum(['json', 'url']).default('json'),
    /** Create missing login roles (needs CREATEROLE). @defaultValue true */
    create: z.boolean().default(true),
    /** Group roles granted to a login role rekey creates (where the privileges live). @defaultValue [] */
    memberOf: z.array(roleName).default([]),
    /** On revoke, also end the role's open sessions (needs pg_signal_backend). @defaultValue false */
    terminateSessions: z.boolean().default(false),
    /**
     * Accept a server that lets the role in without checking the password (pg_hba `trust`).
     * verify then proves only that the role can log in. @defaultValue false
     */
    allowTrustAuth: z.boolean().default(false),
  })
  .strict();
export type PostgresRoleIssuerBinding = z.infer<typeof postgresRoleIssuerBinding>;
