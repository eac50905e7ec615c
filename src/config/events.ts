/**
 * The `events:` section of rekey.yaml: receivers that turn cloud events into rotations.
 *
 * ```yaml
 * events:
 *   pubsub:
 *     audience: https://rekey.example.com/events/pubsub      # the push subscription's token audience
 *     serviceAccount: pubsub-push@my-project.iam.gserviceaccount.com
 * ```
 */
import { z } from 'zod';

/** Google's JWKS for the ID tokens Pub/Sub push attaches. */
export const GOOGLE_JWKS_URL = 'https://www.googleapis.com/oauth2/v3/certs';
/** Google signs ID tokens with either spelling of its issuer; both are accepted unless configured. */
export const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

const publicJwk = z
  .object({ kty: z.string() })
  .loose()
  .refine((key) => !('d' in key) && !('k' in key), 'must be a public key: remove the private parts (d, k); keys here verify, never sign');

/** `events.pubsub`: how a Pub/Sub push request proves it comes from your subscription. */
export const pubsubConfig = z
  .object({
    /**
     * The `aud` claim Pub/Sub puts in its token: the subscription's `--push-auth-token-audience`, or
     * the push endpoint URL when that flag was not given.
     */
    audience: z.string().min(1),
    /** Accepted `iss` values. @defaultValue both spellings of Google's issuer */
    issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /**
     * The service account the subscription signs as (`--push-auth-service-account`); the token's
     * `email` claim must equal it and be verified. Strongly recommended: without it, any Google
     * service account's token for this audience is accepted. @defaultValue unset
     */
    serviceAccount: z.email().optional(),
    /**
     * Where the signing keys are published (fetched, cached, refetched for an unknown key id).
     * https only, except on loopback (tests). @defaultValue Google's certs URL
     */
    jwksUrl: z
      .url()
      .refine((text) => {
        const url = new URL(text);
        return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
      }, 'must be an https URL (http only on loopback)')
      .optional(),
    /** Inline public keys instead of a URL (air-gapped setups, tests). */
    jwks: z.object({ keys: z.array(publicJwk).min(1) }).strict().optional(),
    /** One inline PEM public key (SPKI `BEGIN PUBLIC KEY`) or certificate (`BEGIN CERTIFICATE`). */
    pem: z
      .string()
      .regex(/^-----BEGIN (PUBLIC KEY|CERTIFICATE)-----[\s\S]+-----END (PUBLIC KEY|CERTIFICATE)-----\s*$/, 'must be a PEM public key or certificate')
      .optional(),
  })
  .strict()
  .refine((c) => [c.jwksUrl, c.jwks, c.pem].filter((k) => k !== undefined).length <= 1, {
    message: 'give at most one of jwksUrl, jwks and pem',
  });

export type PubsubConfig = z.infer<typeof pubsubConfig>;

/** The `events:` section. */
export const eventsConfig = z
  .object({
    /** Google Secret Manager rotation notifications, pushed by Pub/Sub to POST /events/pubsub. */
    pubsub: pubsubConfig.optional(),
  })
  .strict();

export type EventsConfig = z.infer<typeof eventsConfig>;
