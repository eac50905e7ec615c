/**
 * POST /webhooks/aws-health: AWS Health's `AWS_RISK_CREDENTIALS_EXPOSED` event, delivered
 * by an EventBridge rule to an API destination. The destination's connection (API key
 * authorization) adds one configured header to every request; we compare it in constant
 * time. The event names access key ids in `detail.affectedEntities[].entityValue`, never
 * the secret access key, so versions are matched by the aws-iam-access-key issuer's
 * public state (`accessKeyId`). The delivery id is the event's `detail.eventArn` (plus
 * `communicationId`), the same in EventBridge's retries and in the copy AWS Health sends to
 * the backup region; the event `id` only when there is no eventArn.
 */
import type { AwsHealthConfig } from '../config/leaks.js';
import { DELIVERY_ID } from './report.js';
import { header, isObject, parseJson, type Receiver, Rejection, safeEqual } from './receiver.js';

const EVENT_TYPE = 'AWS_RISK_CREDENTIALS_EXPOSED';
/** IAM user (AKIA) and temporary (ASIA) access key ids, wherever they sit in an entity value. */
const ACCESS_KEY_ID = /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g;

export const awsHealthReceiver: Receiver<AwsHealthConfig> = {
  name: 'aws-health',
  path: '/webhooks/aws-health',
  section: (config) => config.awsHealth,

  authenticate(request, section, ctx) {
    const presented = header(request.headers, section.header);
    if (!presented) throw new Rejection(401, 'missing_signature');
    const expected = ctx.credential(section.token, 'leaks.awsHealth.token');
    if (!safeEqual(presented, expected.reveal())) throw new Rejection(401, 'bad_token');
  },

  async handle(request, _section, ctx) {
    const event = parseJson(request.body);
    if (!isObject(event) || !isObject(event.detail)) throw new Rejection(400, 'malformed', 'expected an EventBridge event');
    if (event.source !== 'aws.health' || event.detail.eventTypeCode !== EVENT_TYPE) {
      return { status: 200, body: { status: 'ignored', reason: `not an aws.health ${EVENT_TYPE} event` } };
    }
    // AWS Health sends a global event to us-east-1 and to the backup region us-west-2 with
    // different event ids; eventArn (with communicationId) is what stays the same across the
    // copies, and across EventBridge's retries. So it names the delivery when present.
    const { eventArn, communicationId } = event.detail;
    const deliveryId =
      typeof eventArn === 'string' ? `${eventArn}${typeof communicationId === 'string' ? `/${communicationId}` : ''}` : typeof event.id === 'string' ? event.id : '';
    if (!DELIVERY_ID.test(deliveryId)) throw new Rejection(400, 'malformed', 'the event has no usable id or eventArn');
    const keyIds = accessKeyIds(event.detail.affectedEntities);
    if (!keyIds.length) throw new Rejection(400, 'malformed', 'no access key id in detail.affectedEntities');
    const { repo } = ctx.runtime.engine.deps;
    const results = [];
    for (const accessKeyId of keyIds) {
      const issued = await repo.findVersionByPublicId(accessKeyId);
      // Unmatched: recorded under the key id (public: it names the key, it is not the secret).
      const fingerprint = issued?.fingerprint ?? `aws-access-key:${accessKeyId}`;
      const record = await ctx.reporter.report('aws-health', deliveryId, fingerprint, request.receivedAt);
      results.push({ accessKeyId, outcome: record.outcome, duplicate: record.duplicate });
    }
    return { status: 200, body: { results } };
  },
};

function accessKeyIds(entities: unknown): string[] {
  if (!Array.isArray(entities)) return [];
  const ids = new Set<string>();
  for (const entity of entities) {
    const value = isObject(entity) ? entity.entityValue : undefined;
    if (typeof value === 'string' && value.length <= 2048) for (const [id] of value.matchAll(ACCESS_KEY_ID)) ids.add(id);
  }
  return [...ids].slice(0, 100);
}
