import { z } from 'zod';
import { checkOutboundUrl, insecureFlag } from '../../src/core/kit/outbound-url.js';
import type { JsonValue } from '../../src/core/ports.js';
import { parseHeader, parsePath, variablesOf, variablesOfJson } from './template.js';

const COMMON = ['secret', 'versionId', 'number', 'consumer'];

const headers = z
  .record(
    z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name'),
    z.string().max(4096).transform(parseHeader),
  )
  .default({})
  .meta({ description: 'Header values may hold {{variables}} and ${env:NAME} credential references' });

const jsonPath = z
  .string()
  .refine((path) => parsePath(path)?.length, 'a JSON path like $.data.key')
  .transform((path) => parsePath(path)!);

const status = z.number().int().min(100).max(599);

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

function request(defaultMethod: (typeof METHODS)[number]) {
  return z.object({
    method: z.enum(METHODS).default(defaultMethod),
    /** Absolute, or relative to `baseUrl`. */
    url: z.string().min(1).max(2048),
    headers,
    /** JSON body; strings may hold {{variables}}. */
    body: z.json().optional(),
  });
}

/** Which variables a request may use; the config is refused when it uses others. */
function allowOnly(allowed: string[], what: string) {
  return (spec: { url: string; headers: Record<string, Array<string | object>>; body?: JsonValue }, ctx: z.RefinementCtx) => {
    const used = [
      ...variablesOf(spec.url),
      ...Object.values(spec.headers).flatMap((parts) => parts.flatMap((p) => (typeof p === 'string' ? variablesOf(p) : []))),
      ...variablesOfJson(spec.body),
    ];
    for (const name of used) {
      if (!allowed.includes(name) && !name.startsWith('vars.')) ctx.addIssue({ code: 'custom', message: `${what} cannot use {{${name}}}` });
    }
  };
}

/** The `providers:` entry: how to mint, revoke and (optionally) probe keys on one SaaS API. */
export const httpConfig = z
  .object({
    /** Base for relative URLs: https, unless `insecure`. */
    baseUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Allow plain http (a test API, a sidecar). Link-local and metadata addresses stay refused. @defaultValue false */
    insecure: insecureFlag,
    /** Sent with every call (typically the admin token: `Authorization: Bearer ${env:ACME_ADMIN_TOKEN}`). */
    headers,
    issue: request('POST')
      .extend({
        /** Where the new key is in the JSON response. */
        valuePath: jsonPath,
        /** Where its id is (what revoke puts in {{id}}). */
        idPath: jsonPath,
      })
      .strict()
      .superRefine(allowOnly(COMMON, 'issue')),
    revoke: request('DELETE')
      .extend({
        /** Statuses that mean "already gone", i.e. success. @defaultValue [404, 410] */
        goneStatus: z.array(status).default([404, 410]),
      })
      .strict()
      .superRefine(allowOnly([...COMMON, 'id'], 'revoke'))
      .refine(
        (spec) => [spec.url, JSON.stringify(spec.body ?? null)].some((text) => variablesOf(text).includes('id')),
        'revoke must name the key: use {{id}} in its url or body',
      ),
    /**
     * A call made with the new key (e.g. `Authorization: Bearer {{value}}`) that succeeds only if
     * the key works. Without it, verify only checks that issue returned a key.
     */
    verify: request('GET')
      .extend({
        /** Statuses that mean "the key works". @defaultValue any 2xx */
        expectStatus: z.array(status).optional(),
        /**
         * Also send the provider's `headers` (typically the admin token). Off by default: verify
         * must prove that the new key works, not the admin token. @defaultValue false
         */
        providerHeaders: z.boolean().default(false),
      })
      .strict()
      .superRefine(allowOnly([...COMMON, 'id', 'value'], 'verify'))
      .optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    checkOutboundUrl(config.baseUrl, config.insecure, ['baseUrl'], ctx);
    for (const step of ['issue', 'revoke', 'verify'] as const) checkOutboundUrl(config[step]?.url, config.insecure, [step, 'url'], ctx);
  });
export type HttpConfig = z.infer<typeof httpConfig>;
export type HttpRequestSpec = z.infer<ReturnType<typeof request>>;

/** Every template variable the provider's calls use: URLs, headers (its own and each call's) and bodies. */
export function variablesOfConfig(config: HttpConfig): string[] {
  const ofHeaders = (headers: Record<string, Array<string | object>>) => Object.values(headers).flatMap((parts) => parts.flatMap((p) => (typeof p === 'string' ? variablesOf(p) : [])));
  return [
    ...ofHeaders(config.headers),
    ...[config.issue, config.revoke, config.verify].flatMap((spec) => (spec ? [...variablesOf(spec.url), ...ofHeaders(spec.headers), ...variablesOfJson(spec.body)] : [])),
  ];
}

/** Per-secret issuer parameters: values for `{{vars.<key>}}` in the provider's templates. */
export const httpIssuerBinding = z
  .object({
    vars: z.record(z.string().regex(/^[A-Za-z][\w-]{0,63}$/), z.string().max(1024)).default({}),
  })
  .strict();
export type HttpIssuerBinding = z.infer<typeof httpIssuerBinding>;
