/**
 * The `delivery:` section of rekey.yaml (issue 17, docs/delivery.md): the authenticators that
 * turn a workload's credential into a subject, and the grants that say which subjects may get
 * a short-lived JWT signed with which managed signing key, or which secret's current value.
 * A token grant's TTL may not exceed the signing key's grace, so a rotation never leaves a
 * live token without its public key; nor may a value grant's exceed its secret's grace (checked
 * when a file is applied), so a rotation never retires a value a caller may still hold.
 */
import { z } from 'zod';
import { formatDuration } from '../core/duration.js';
import { durationSchema } from './duration.js';
import type { DeliverySpec, GrantSpec } from '../core/delivery.js';
import { RESERVED_CLAIMS } from '../core/token-exchange.js';

const claimName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/, 'a claim name: 1-64 characters of A-Z a-z 0-9 _ . : -, starting with a letter or _')
  .refine((name) => !(RESERVED_CLAIMS as readonly string[]).includes(name), `rekey sets ${RESERVED_CLAIMS.join(', ')} itself`);

const grant = z
  .object({
    authenticator: z.string().describe('An entry of delivery.authenticators'),
    subjects: z.array(z.string().min(1).max(256)).min(1).describe('Subject ids this grant serves; * matches any run of characters'),
    token: z
      .object({
        signingKey: z.string().describe('A managed secret whose issuer signs JWTs (jwt-signing-key)'),
        audience: z.string().min(1).max(256).describe('aud of the minted tokens; a request names it in `audience`'),
        ttl: durationSchema('5m').describe("Lifetime of a minted token; at most the signing key's grace"),
        claims: z
          .object({
            copy: z.array(claimName).default([]).describe("Claims copied from the subject's verified claims"),
            fixed: z
              .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
              .default({})
              .superRefine((claims, ctx) => {
                for (const name of Object.keys(claims)) for (const issue of claimName.safeParse(name).error?.issues ?? []) ctx.addIssue({ code: 'custom', path: [name], message: issue.message });
              })
              .describe('Claims set to fixed values'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .optional()
      .describe('A token grant: short-lived JWTs signed with a managed signing key (POST /v1/token)'),
    value: z
      .object({
        secret: z.string().describe('A managed secret whose current value the subjects may read (GET /v1/secrets/{name})'),
        ttl: durationSchema('5m').describe("How long a client may use a value before asking again; never past the next scheduled rotation; at most the secret's grace"),
      })
      .strict()
      .optional()
      .describe('A value grant: the current value of one secret'),
  })
  .strict()
  .refine((g) => !g.token !== !g.value, 'a grant has either token: or value:, not both and not neither');

export const deliverySchema = z
  .object({
    issuer: z.string().min(1).max(256).default('rekey').describe('iss of every minted token'),
    authenticators: z
      .record(z.string(), z.object({}).loose())
      .default({})
      .describe('Each entry: `type:` (an authenticator provider) or `provider:` (a providers: entry), plus its parameters'),
    grants: z.record(z.string(), grant).default({}).describe('Which subjects get which tokens or values'),
    rateLimit: z
      .object({
        max: z.number().int().min(1).max(100_000).default(120).describe('Requests an authenticated subject may make at once, and per window'),
        window: durationSchema('1m'),
        streams: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(100)
          .describe('Change streams (GET /v1/events) an authenticated subject may hold open at once, on each server replica'),
      })
      .strict()
      .prefault({})
      .describe('Per-subject limit on every delivery request, charged after authentication (each server replica counts its own)'),
  })
  .strict();

export type DeliveryDocument = z.infer<typeof deliverySchema>;

/** The validated section: grants in core's shape, authenticators as role references. */
export interface DeliveryConfig extends DeliverySpec {
  authenticators: Readonly<Record<string, { instance: string; params: unknown }>>;
  /** Per authenticated subject, on each server replica: requests, and change streams open at once. */
  rateLimit: { max: number; windowMs: number; streams: number };
}

interface Issue {
  path: Array<string | number>;
  message: string;
}

/**
 * Checks the section against the rest of the document: each authenticator through `role`
 * (schema.ts's check of a provider binding), each grant's authenticator and signing key, and
 * its TTL against that key's grace.
 */
export function validateDelivery(
  section: DeliveryDocument,
  role: (raw: Record<string, unknown>, path: Array<string | number>) => { instance: string; params: unknown } | undefined,
  secrets: Readonly<Record<string, { graceMs: number }>>,
): { delivery: DeliveryConfig; issues: Issue[] } {
  const issues: Issue[] = [];
  const authenticators: Record<string, { instance: string; params: unknown }> = {};
  for (const [name, raw] of Object.entries(section.authenticators)) {
    const ref = role(raw, ['delivery', 'authenticators', name]);
    if (ref) authenticators[name] = ref;
  }
  const grants: Record<string, GrantSpec> = {};
  for (const [name, g] of Object.entries(section.grants)) {
    const path = ['delivery', 'grants', name];
    if (!Object.hasOwn(section.authenticators, g.authenticator)) issues.push({ path: [...path, 'authenticator'], message: `no authenticator named "${g.authenticator}" under delivery.authenticators` });
    const managed = (secret: string, at: string[]) => {
      const found = Object.hasOwn(secrets, secret) ? secrets[secret] : undefined;
      if (!found) issues.push({ path: [...path, ...at], message: `no managed secret named "${secret}"` });
      return found;
    };
    const spec: GrantSpec = { name, authenticator: g.authenticator, subjects: g.subjects };
    if (g.token) {
      const key = managed(g.token.signingKey, ['token', 'signingKey']);
      if (key && g.token.ttl > key.graceMs) {
        issues.push({
          path: [...path, 'token', 'ttl'],
          message: `ttl ${formatDuration(g.token.ttl)} is longer than the grace of ${g.token.signingKey} (${formatDuration(key.graceMs)}): a rotation would retire the key of tokens still live`,
        });
      }
      spec.token = { signingKey: g.token.signingKey, audience: g.token.audience, ttlMs: g.token.ttl, claims: g.token.claims };
    }
    if (g.value) {
      managed(g.value.secret, ['value', 'secret']);
      spec.value = { secret: g.value.secret, ttlMs: g.value.ttl };
    }
    grants[name] = spec;
  }
  return { delivery: { issuer: section.issuer, authenticators, grants, rateLimit: { max: section.rateLimit.max, windowMs: section.rateLimit.window, streams: section.rateLimit.streams } }, issues };
}

/**
 * Token grants whose `signingKey` is a secret whose issuer does not sign JWTs (its module's
 * `signsJwt`), which every POST /v1/token of the grant would refuse. Checked when a file is
 * applied (load.ts parseConfig), not when a stored revision is read again: a revision applied
 * before this check still loads, so its rotations and leaks keep working.
 */
export function signingKeyIssues(
  delivery: DeliveryConfig | undefined,
  secrets: Readonly<Record<string, { issuer: { instance: string } }>>,
  providers: Readonly<Record<string, { type: string }>>,
  signsJwt: (type: string) => boolean,
): Issue[] {
  const issues: Issue[] = [];
  for (const grant of Object.values(delivery?.grants ?? {})) {
    if (!grant.token) continue;
    const key = Object.hasOwn(secrets, grant.token.signingKey) ? secrets[grant.token.signingKey] : undefined;
    const type = key && Object.hasOwn(providers, key.issuer.instance) ? providers[key.issuer.instance]!.type : undefined;
    if (type !== undefined && !signsJwt(type)) {
      issues.push({
        path: ['delivery', 'grants', grant.name, 'token', 'signingKey'],
        message: `the issuer of ${grant.token.signingKey} (${type}) does not sign JWTs: name a secret whose issuer does (jwt-signing-key)`,
      });
    }
  }
  return issues;
}

/**
 * Value grants whose `ttl` is longer than their secret's grace. A caller may keep a value for its
 * ttl; the answer's expiry is bounded by the next *scheduled* rotation, but a rotation off the
 * schedule (`rekey rotate`, a fleet, a provider's rotation event) retires the old value at the end
 * of its grace, while a caller that polls without the change stream still holds it. Checked when
 * a file is applied (load.ts parseConfig), not when a stored revision is read again: a revision
 * applied before this check still loads. A leak's emergency rotation has no grace, by design.
 */
export function valueTtlIssues(delivery: DeliveryConfig | undefined, secrets: Readonly<Record<string, { graceMs: number }>>): Issue[] {
  const issues: Issue[] = [];
  for (const grant of Object.values(delivery?.grants ?? {})) {
    const secret = grant.value && Object.hasOwn(secrets, grant.value.secret) ? secrets[grant.value.secret] : undefined;
    if (!grant.value || !secret || grant.value.ttlMs <= secret.graceMs) continue;
    issues.push({
      path: ['delivery', 'grants', grant.name, 'value', 'ttl'],
      message: `ttl ${formatDuration(grant.value.ttlMs)} is longer than the grace of ${grant.value.secret} (${formatDuration(secret.graceMs)}): a rotation off the schedule would retire a value callers may still hold`,
    });
  }
  return issues;
}
