/**
 * POST /webhooks/leaks: a generic receiver for anything that can sign per the Standard
 * Webhooks specification (https://www.standardwebhooks.com, spec/standard-webhooks.md):
 * `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
 * space-separated list of `v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<raw body>`,
 * keyed with the base64 part of a `whsec_...` secret. Any one valid v1 signature passes
 * (senders list two while rotating their secret).
 *
 * Body: `{"token": "<the leaked value>"}` or `{"fingerprint": "fp_..."}` (rekey's own
 * fingerprint, for a reporter that must not handle the value). The delivery id is
 * `webhook-id`: a redelivery is a duplicate.
 */
import { RekeyError } from '../core/errors.js';
import type { SecretValue } from '../core/secret-value.js';
import { standardWebhookSignature, whsecKey } from '../core/kit/standard-webhooks.js';
import type { WebhookConfig } from '../config/leaks.js';
import { DELIVERY_ID, isToken } from './report.js';
import { checkTimestamp, header, isObject, parseJson, type Receiver, Rejection, safeEqual } from './receiver.js';

const FINGERPRINT = /^fp_[A-Za-z0-9_-]{43}$/;

/** The HMAC key inside a `whsec_` secret. @throws RekeyError REKEY_ERR_CONFIG when it is not one. */
function webhookKey(secret: SecretValue): Buffer {
  const key = whsecKey(secret);
  if (!key || key.length < 16) throw new RekeyError('REKEY_ERR_CONFIG', 'leaks.webhook.secret must be whsec_ followed by at least 16 base64-encoded bytes');
  return key;
}

export const webhookReceiver: Receiver<WebhookConfig, string> = {
  name: 'webhook',
  path: '/webhooks/leaks',
  section: (config) => config.webhook,

  authenticate(request, section, ctx) {
    const id = header(request.headers, 'webhook-id');
    const timestamp = header(request.headers, 'webhook-timestamp');
    const signatures = header(request.headers, 'webhook-signature');
    if (!id || !timestamp || !signatures) throw new Rejection(401, 'missing_signature');
    checkTimestamp(timestamp, ctx.now(), section.tolerance);
    const expected = standardWebhookSignature(webhookKey(ctx.credential(section.secret, 'leaks.webhook.secret')), id, timestamp, request.body);
    // Every candidate is compared (no early exit), in constant time each.
    let valid = false;
    for (const candidate of signatures.split(' ').slice(0, 10)) valid = safeEqual(candidate, expected) || valid;
    if (!valid) throw new Rejection(401, 'bad_signature');
    return id;
  },

  async handle(request, _section, ctx, id) {
    if (!DELIVERY_ID.test(id)) throw new Rejection(400, 'malformed', 'webhook-id is not a usable id');
    const body = parseJson(request.body);
    if (!isObject(body)) throw new Rejection(400, 'malformed', 'expected a JSON object');
    const { token, fingerprint } = body;
    let record;
    if (isToken(token) && fingerprint === undefined) {
      // reportToken, not report: a reported admin API token is revoked first, as from every receiver.
      record = await ctx.reporter.reportToken('webhook', id, token, request.receivedAt);
    } else if (typeof fingerprint === 'string' && FINGERPRINT.test(fingerprint) && token === undefined) {
      record = await ctx.reporter.report('webhook', id, fingerprint, request.receivedAt);
    } else {
      throw new Rejection(400, 'malformed', 'the body needs exactly one of token or fingerprint');
    }
    return { status: 200, body: { outcome: record.outcome, duplicate: record.duplicate } };
  },
};
