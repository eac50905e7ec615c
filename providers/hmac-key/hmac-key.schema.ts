import { z } from 'zod';

/** The `providers:` entry: nothing to configure, the secret is minted locally. */
export const hmacKeyConfig = z.object({}).strict();
export type HmacKeyConfig = z.infer<typeof hmacKeyConfig>;

/** Per-secret issuer parameters. */
export const hmacKeyIssuerBinding = z
  .object({
    /**
     * Random bytes per secret, encoded base64url.
     * @defaultValue 32 (256 bits, HMAC-SHA256's block-size sweet spot)
     */
    bytes: z.number().int().min(16).max(128).default(32),
    /**
     * Text put before the encoded bytes, e.g. `whsec_`, so secret scanners can recognise the value.
     * @defaultValue '' (none)
     */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{0,32}$/, 'letters, digits, _ and -, at most 32')
      .default(''),
  })
  .strict();
export type HmacKeyIssuerBinding = z.infer<typeof hmacKeyIssuerBinding>;
