/** The webhook target's side of Standard Webhooks (src/core/kit/standard-webhooks.ts): its key and headers. */
import { RekeyError } from '../../src/core/errors.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { standardWebhookSignature, whsecKey } from '../../src/core/kit/standard-webhooks.js';

/** Decodes a `whsec_<base64>` secret. @throws RekeyError REKEY_ERR_CONFIG when it is not one. */
export function signingKey(secret: SecretValue, where: string): Buffer {
  const key = whsecKey(secret);
  // The spec asks for 24-64 bytes of randomness; shorter keys are refused, not padded.
  if (!key || key.length < 24 || key.length > 64) {
    throw new RekeyError('REKEY_ERR_CONFIG', `${where}: the webhook secret must be whsec_ followed by base64 of 24-64 random bytes`);
  }
  return key;
}

/** The three headers of one signed message. */
export function signedHeaders(key: Buffer, id: string, body: string, now = new Date()): Record<string, string> {
  const timestamp = String(Math.floor(now.getTime() / 1000));
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': standardWebhookSignature(key, id, timestamp, body) };
}
