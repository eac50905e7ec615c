/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/, spec:
 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
 * shared by the webhook target (signing) and the leak receiver (checking):
 * `v1,<base64 HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>">`, keyed by the
 * base64-decoded part of a `whsec_` secret; the timestamp is Unix seconds.
 */
import { createHmac } from 'node:crypto';
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
