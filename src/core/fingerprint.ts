import { createHmac } from 'node:crypto';
import { RekeyError } from './errors.js';
import type { SecretValue } from './secret-value.js';

/** Fingerprints look like `fp_` + 43 base64url chars (HMAC-SHA256). */
export type Fingerprinter = (value: SecretValue | string) => string;

/**
 * Builds the fingerprint function from REKEY_FINGERPRINT_KEY (at least 32 bytes, hex or base64).
 * A keyed hash, so a database dump does not let anyone test guesses against fingerprints.
 */
export function createFingerprinter(key: SecretValue | string | undefined): Fingerprinter {
  const bytes = decodeKey(typeof key === 'object' ? key.reveal() : key, 'REKEY_FINGERPRINT_KEY');
  return (value) =>
    'fp_' +
    createHmac('sha256', bytes)
      .update(typeof value === 'string' ? value : value.reveal())
      .digest('base64url');
}

/** Fingerprints leave rekey (API answers, `rekey status`, notifications) in this short form only: `fp_` and 9 more characters. */
export const SHORT_FINGERPRINT = 12;
export const shortFingerprint = (fingerprint: string | null): string | null => fingerprint?.slice(0, SHORT_FINGERPRINT) ?? null;

/** Decodes a 32-byte key given as 64 hex chars or base64. @throws RekeyError REKEY_ERR_CONFIG. */
export function decodeKey(key: string | undefined, name: string): Buffer {
  if (!key) throw new RekeyError('REKEY_ERR_CONFIG', `${name} is not set (32 random bytes, hex or base64; \`openssl rand -hex 32\`)`);
  const bytes = /^[0-9a-fA-F]{64}$/.test(key) ? Buffer.from(key, 'hex') : Buffer.from(key, 'base64');
  if (bytes.length < 32) throw new RekeyError('REKEY_ERR_CONFIG', `${name} must hold at least 32 bytes (got ${bytes.length})`);
  return bytes;
}
