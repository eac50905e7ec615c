/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/, spec:
 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
 * shared by the webhook target and the notification destinations (signing) and the leak receiver (checking):
 * `v1,<base64 HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>">`, keyed by the
 * base64-decoded part of a `whsec_` secret; the timestamp is Unix seconds.
 */
import { createHmac } from 'node:crypto';
import { RekeyError } from '../errors.js';
import type { SecretValue } from '../secret-value.js';

/** The HMAC key inside a `whsec_<base64>` secret; undefined when the secret is not one. */
export function whsecKey(secret: SecretValue): Buffer | undefined {
  const text = secret.reveal();
  if (!text.startsWith('whsec_')) return undefined;
  const encoded = text.slice('whsec_'.length);
  return /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ? Buffer.from(encoded, 'base64') : undefined;
}

/** The `v1,<base64>` signature of one message, as webhook-signature carries it. */
export function standardWebhookSignature(key: Buffer, id: string, timestamp: string, body: Buffer | string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64')}`;
}

/** Decodes the `whsec_<base64>` secret a sender signs with. @throws RekeyError REKEY_ERR_CONFIG when it is not one. */
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
