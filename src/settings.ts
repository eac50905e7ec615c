/**
 * Every environment variable rekey's processes read, in one place. The Helm chart's
 * tests check that each one is wired; nothing else in src/ reads process.env (providers
 * read only the `${env:NAME}` references their config names, and cloud SDKs their
 * default credential chains).
 */
import { requireDuration } from './core/duration.js';
import { RekeyError } from './core/errors.js';
import { SecretValue } from './core/secret-value.js';

export interface EnvVar {
  description: string;
  /** Holds a credential: comes from a Kubernetes Secret, never a ConfigMap. */
  secret: boolean;
  /** Which processes cannot start without it. */
  requiredBy: ReadonlyArray<'worker' | 'server' | 'migrate'>;
  default?: string;
}

export const ENVIRONMENT = {
  DATABASE_URL: {
    description: 'PostgreSQL connection URL for rekey state',
    secret: true,
    requiredBy: ['worker', 'server', 'migrate'],
    default: 'postgresql://postgres@127.0.0.1:5432/rekey',
  },
  REDIS_URL: {
    description: 'Redis connection URL for the BullMQ queues',
    secret: true,
    requiredBy: ['worker', 'server'],
    default: 'redis://127.0.0.1:6379',
  },
  REKEY_FINGERPRINT_KEY: {
    description: 'HMAC-SHA256 key (32 bytes, hex or base64) for value fingerprints',
    secret: true,
    requiredBy: ['worker', 'server'],
  },
  REKEY_LOCAL_STORE_KEY: {
    description: 'AES-256-GCM key (32 bytes, hex or base64) sealing values in the built-in local store',
    secret: true,
    requiredBy: [],
  },
  REKEY_QUEUE_PREFIX: {
    description: 'BullMQ key prefix; keep the braces for Redis Cluster hash-tag safety',
    secret: false,
    requiredBy: [],
    default: '{rekey}',
  },
  REKEY_DRAIN_TIMEOUT: {
    description: 'How long a worker waits for in-flight jobs after SIGTERM before exiting',
    secret: false,
    requiredBy: [],
    default: '25s',
  },
  REKEY_TRUST_PROXY: {
    description:
      "Which reverse proxies `rekey server` believes about the client's address (X-Forwarded-For, used by the receivers' per-source rate limits): false, true, a hop count, or comma-separated addresses/CIDRs",
    secret: false,
    requiredBy: [],
    default: 'false',
  },
  LOG_LEVEL: { description: 'pino log level', secret: false, requiredBy: [], default: 'info' },
  PORT: { description: 'HTTP port of `rekey server` (`--port` wins)', secret: false, requiredBy: [], default: '8080' },
} as const satisfies Record<string, EnvVar>;

export type EnvName = keyof typeof ENVIRONMENT;

export interface Settings {
  databaseUrl: string;
  redisUrl: string;
  /** REKEY_FINGERPRINT_KEY; the local store's key is read by its config (`${env:REKEY_LOCAL_STORE_KEY}`). */
  fingerprintKey: SecretValue | undefined;
  queuePrefix: string;
  drainTimeoutMs: number;
  /** fastify's trustProxy: nobody by default, so a client cannot pick its own rate-limit bucket. */
  trustProxy: boolean | number | string[];
  logLevel: string;
  port: number;
}

/** Reads the environment once. @throws RekeyError REKEY_ERR_CONFIG naming the variable. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const get = (name: EnvName): string | undefined => {
    const spec: EnvVar = ENVIRONMENT[name];
    return env[name] || spec.default;
  };
  const drain = requireDuration(get('REKEY_DRAIN_TIMEOUT')!, 'REKEY_DRAIN_TIMEOUT');
  const port = Number(get('PORT'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RekeyError('REKEY_ERR_CONFIG', 'PORT must be a TCP port');
  return {
    databaseUrl: get('DATABASE_URL')!,
    redisUrl: get('REDIS_URL')!,
    fingerprintKey: optionalSecret(get('REKEY_FINGERPRINT_KEY')),
    queuePrefix: get('REKEY_QUEUE_PREFIX')!,
    drainTimeoutMs: drain,
    trustProxy: parseTrustProxy(get('REKEY_TRUST_PROXY')!),
    logLevel: get('LOG_LEVEL')!,
    port,
  };
}

function optionalSecret(text: string | undefined): SecretValue | undefined {
  return text ? SecretValue.of(text) : undefined;
}

function parseTrustProxy(text: string): boolean | number | string[] {
  if (text === 'false' || text === '') return false;
  if (text === 'true') return true;
  if (/^\d+$/.test(text)) return Number(text);
  return text.split(',').map((part) => part.trim()).filter(Boolean);
}
