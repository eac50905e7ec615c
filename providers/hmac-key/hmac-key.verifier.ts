/**
 * Request signing with an hmac-key secret, for the services that receive signed requests.
 *
 * Header format (Stripe's scheme): `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`.
 * The timestamp is signed so a captured request cannot be replayed after `toleranceSeconds`.
 * A signer may send several `v1=` entries (one per secret it holds) during a rotation.
 * The HMAC key is the secret's text as UTF-8, so any language can sign with it as stored.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SecretValue } from '../../src/core/secret-value.js';

export const HMAC_ALGORITHM = 'hmac-sha256';
/** The header rekey's signers use; any header works, the verifier only sees its value. */
export const HMAC_SIGNATURE_HEADER = 'x-rekey-signature';

/** Hex HMAC-SHA256 of `data` keyed by the secret. */
export function hmacDigest(secret: SecretValue, data: string | Uint8Array): string {
  return createHmac('sha256', secret.reveal()).update(data).digest('hex');
}

/**
 * The signature header value for `payload` (the raw request body), signed now or at `timestamp`.
 * @param timestamp Unix seconds. @defaultValue the current time
 */
export function signPayload(secret: SecretValue, payload: string | Uint8Array, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${hmacDigest(secret, signedBytes(timestamp, payload))}`;
}

export interface HmacVerifierOptions {
  /**
   * Returns the secrets that are valid now: the current version and, during the overlap, the
   * previous one (wire it to the store's `current` and `previous` stages). Called at most once
   * per `ttlMs` (plus one refresh on a miss); the result lives only in this closure's memory.
   */
  read: () => Promise<SecretValue[]>;
  /** How long a read is reused. @defaultValue 5000 */
  ttlMs?: number;
  /** Oldest or most future signature timestamp accepted, in seconds. @defaultValue 300 */
  toleranceSeconds?: number;
  /**
   * On a mismatch, re-read at once if the cached set is at least this old, so a rotation that was
   * just promoted is picked up without waiting for `ttlMs`. @defaultValue 1000
   */
  refreshOnMissMs?: number;
  /** Clock in milliseconds, for tests. @defaultValue Date.now */
  now?: () => number;
}

export type HmacVerdict = { ok: true } | { ok: false; reason: 'malformed' | 'expired' | 'mismatch' };

export interface HmacVerifier {
  /** Checks `header` against `payload` with every valid secret, in constant time per comparison. */
  verify(payload: string | Uint8Array, header: string | undefined): Promise<HmacVerdict>;
  /** Forgets the cached secrets (e.g. right after a revocation is announced). */
  invalidate(): void;
}

/** Builds a verifier that accepts signatures made with any secret `read()` returns. */
export function createHmacVerifier(options: HmacVerifierOptions): HmacVerifier {
  const ttlMs = options.ttlMs ?? 5000;
  const tolerance = options.toleranceSeconds ?? 300;
  const refreshOnMissMs = options.refreshOnMissMs ?? 1000;
  const now = options.now ?? Date.now;
  let cache: { at: number; secrets: Promise<SecretValue[]> } | undefined;

  const secrets = (force: boolean): Promise<SecretValue[]> => {
    if (!cache || force || now() - cache.at >= ttlMs) {
      const entry = { at: now(), secrets: options.read() };
      // A failed read must not be served from the cache until it expires.
      entry.secrets.catch(() => {
        if (cache === entry) cache = undefined;
      });
      cache = entry;
    }
    return cache.secrets;
  };

  return {
    async verify(payload, header) {
      const parsed = parseHeader(header);
      if (!parsed) return { ok: false, reason: 'malformed' };
      if (Math.abs(now() / 1000 - parsed.timestamp) > tolerance) return { ok: false, reason: 'expired' };
      const data = signedBytes(parsed.timestamp, payload);
      if (matches(await secrets(false), data, parsed.signatures)) return { ok: true };
      if (cache && now() - cache.at >= refreshOnMissMs && matches(await secrets(true), data, parsed.signatures)) {
        return { ok: true };
      }
      return { ok: false, reason: 'mismatch' };
    },
    invalidate() {
      cache = undefined;
    },
  };
}

function signedBytes(timestamp: number, payload: string | Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${timestamp}.`), typeof payload === 'string' ? Buffer.from(payload) : payload]);
}

function matches(secrets: SecretValue[], data: Buffer, signatures: Buffer[]): boolean {
  let ok = false;
  // Every comparison runs (no early exit), so timing does not reveal which secret matched.
  for (const secret of secrets) {
    const expected = Buffer.from(hmacDigest(secret, data), 'hex');
    for (const signature of signatures) {
      if (signature.length === expected.length && timingSafeEqual(signature, expected)) ok = true;
    }
  }
  return ok;
}

function parseHeader(header: string | undefined): { timestamp: number; signatures: Buffer[] } | undefined {
  if (!header || header.length > 2048) return undefined;
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && value && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && value && /^[0-9a-f]{64}$/i.test(value)) signatures.push(Buffer.from(value, 'hex'));
  }
  return timestamp === undefined || signatures.length === 0 ? undefined : { timestamp, signatures };
}
