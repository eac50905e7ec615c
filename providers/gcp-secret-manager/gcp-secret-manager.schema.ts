/**
 * Config of a `gcp-secret-manager` provider instance and of a secret's store binding.
 * Credentials are never configured here: Application Default Credentials find them (workload
 * identity, the metadata server, GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials).
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** The `providers:` entry: `{ type: gcp-secret-manager, project: my-project }`. */
export const gcpSecretManagerConfig = z
  .object({
    /** The project that owns the secrets: its id (or number). */
    project: z.string().regex(/^([a-z][a-z0-9-]{4,28}[a-z0-9]|\d{1,20})$/, 'must be a GCP project id or number'),
    /**
     * The project's number. Google names resources by number in responses and in Pub/Sub
     * rotation notifications; with it, those names match this provider's secrets. @defaultValue unset
     */
    projectNumber: z.string().regex(/^\d{1,20}$/).optional(),
    /** Overrides the API host (a private endpoint, or a local fake). @defaultValue secretmanager.googleapis.com */
    apiEndpoint: z.string().min(1).max(253).optional(),
    /**
     * How the client talks to the API: `grpc` (HTTP/2), or `rest`, the official client's HTTP/1.1
     * fallback mode (JSON over HTTPS) for networks whose proxies or firewalls block gRPC. Same
     * methods, permissions and error codes either way. @defaultValue grpc
     */
    transport: z.enum(['grpc', 'rest']).default('grpc'),
    /** Overrides the API port. @defaultValue 443 */
    port: z.number().int().min(1).max(65535).optional(),
    /**
     * Plaintext (gRPC without TLS, or `http://` for `rest`) and no credentials at all, for a local
     * fake or emulator only: refused unless `apiEndpoint` is a loopback address. @defaultValue false
     */
    insecure: z.boolean().default(false),
    /**
     * What destroy() does to an old version: `disable` keeps it recoverable (re-enable it in the
     * console); `destroy` disables it, then destroys its data irrevocably. @defaultValue disable
     */
    destroy: z.enum(['disable', 'destroy']).default('disable'),
    /** Deadline of one API call, in milliseconds; one attempt per call, rekey retries the step. @defaultValue 30000 */
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /**
     * Replica locations for secrets rekey creates (user-managed replication); automatic
     * replication when unset. Existing secrets keep theirs. @defaultValue automatic
     */
    locations: z.array(z.string().regex(/^[a-z]+-[a-z]+\d+$/)).min(1).optional(),
  })
  .strict()
  .refine((c) => !c.insecure || (c.apiEndpoint !== undefined && (LOOPBACK.has(c.apiEndpoint) || isLoopbackIp(c.apiEndpoint))), {
    message: 'insecure is allowed only with a loopback apiEndpoint (127.0.0.1, ::1, localhost)',
    path: ['insecure'],
  });

export type GcpSecretManagerConfig = z.infer<typeof gcpSecretManagerConfig>;

/** A secret's `store:` binding: `{ provider: gcp-prod, name: payments-api-key }`. */
export const gcpSecretManagerStoreBinding = z
  .object({
    /** The secret id (the last part of `projects/P/secrets/<id>`). */
    name: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, 'must be a Secret Manager secret id: letters, digits, - and _'),
    /**
     * A Pub/Sub topic (`projects/<project>/topics/<id>`) that `rekey apply` adds to the secret's
     * topics. Secret Manager keeps a rotation schedule only on a secret with a topic, so without
     * one (here or already on the secret) apply cannot show rekey's schedule in the console.
     * @defaultValue unset
     */
    topic: z
      .string()
      .regex(/^projects\/[^/]+\/topics\/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/, 'must be a Pub/Sub topic name: projects/<project>/topics/<id>')
      .optional(),
  })
  .strict();

export type GcpSecretManagerStoreBinding = z.infer<typeof gcpSecretManagerStoreBinding>;

function isLoopbackIp(host: string): boolean {
  return isIP(host) === 4 && host.startsWith('127.');
}
