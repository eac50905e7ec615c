/**
 * POST /webhooks/gitguardian: GitGuardian's custom webhook.
 * https://docs.gitguardian.com/platform/configure-alerting/notifiers-integrations/custom-webhook
 *
 * Signature: `Gitguardian-Signature: sha256=<hex>` (the deprecated `X-GitGuardian-Signature`
 * is read when the new one is absent), an HMAC-SHA256 of the raw body whose KEY is the
 * `Timestamp` header's value followed by the signature token (GitGuardian's documented
 * scheme and test vector: timestamp "0", token "foo", body "bar" ->
 * 172fe3d6...a0fc2). Timestamps further than `tolerance` from our clock are replays.
 *
 * Incident events carry no secret, only `incident.hmsl_hash`, which HmslIndex matches to
 * a live version; when none matched and some live version's store could not be read, the
 * incident is answered 503 (REKEY_ERR_UNAVAILABLE) with nothing recorded, so GitGuardian
 * delivers it again. The delivery id is the incident id: a new occurrence or a regression of
 * the same incident is the same report. GitGuardian's "test" message carries the matches
 * in plain text (`matches[].match`); those are fingerprinted like any reported token.
 */
import { createHmac } from 'node:crypto';
import type { GitguardianConfig } from '../config/leaks.js';
import { RekeyError } from '../core/errors.js';
import {
  type Answer,
  checkTimestamp,
  header,
  isObject,
  parseJson,
  type RawRequest,
  type Receiver,
  type ReceiverContext,
  Rejection,
  safeEqual,
  sha256Hex,
} from './receiver.js';
import { isToken } from './report.js';

/** Events that mean "this secret is exposed"; the rest (assigned, resolved, ...) are acknowledged and ignored. */
const EXPOSURE_ACTIONS = new Set(['incident_triggered', 'new_occurrence', 'incident_regression', 'incident_reopened']);
const HMSL_HASH = /^[0-9a-f]{64}$/;

export const gitguardianReceiver: Receiver<GitguardianConfig> = {
  name: 'gitguardian',
  path: '/webhooks/gitguardian',
  section: (config) => config.gitguardian,

  authenticate(request, section, ctx) {
    const signature = header(request.headers, 'gitguardian-signature') ?? header(request.headers, 'x-gitguardian-signature');
    const timestamp = header(request.headers, 'timestamp');
    if (!signature || !timestamp) throw new Rejection(401, 'missing_signature');
    const match = /^sha256=([0-9a-fA-F]{64})$/.exec(signature);
    if (!match) throw new Rejection(401, 'bad_signature');
    checkTimestamp(timestamp, ctx.now(), section.tolerance);
    const token = ctx.credential(section.token, 'leaks.gitguardian.token');
    const expected = createHmac('sha256', Buffer.from(timestamp + token.reveal(), 'utf8')).update(request.body).digest('hex');
    if (!safeEqual(expected, match[1]!.toLowerCase())) throw new Rejection(401, 'bad_signature');
  },

  async handle(request, _section, ctx) {
    const event = parseJson(request.body);
    if (!isObject(event)) throw new Rejection(400, 'malformed', 'expected a JSON object');
    if (Array.isArray(event.matches) && event.action === undefined) return testMessage(event.matches, request, ctx);
    if (typeof event.action !== 'string' || !EXPOSURE_ACTIONS.has(event.action)) {
      return { status: 200, body: { status: 'ignored', reason: 'not an exposure event' } };
    }
    const incident = event.incident;
    if (!isObject(incident) || !(typeof incident.id === 'number' || typeof incident.id === 'string') || !/^[A-Za-z0-9-]{1,64}$/.test(String(incident.id))) {
      throw new Rejection(400, 'malformed', 'incident.id is missing');
    }
    const hash = typeof incident.hmsl_hash === 'string' ? incident.hmsl_hash.toLowerCase() : '';
    if (!HMSL_HASH.test(hash)) throw new Rejection(400, 'malformed', 'incident.hmsl_hash is missing');
    const { version, complete } = await ctx.hmsl.find(hash);
    // Unmatched while some live version could not be read from its store: it may be that one. Nothing is
    // recorded; the 503 makes GitGuardian deliver the incident again, by when the store may answer.
    if (!version && !complete) throw new RekeyError('REKEY_ERR_UNAVAILABLE', 'live versions could not be read from their stores to match the hmsl_hash');
    // Unmatched: recorded under GitGuardian's own hash, the only name we have for that secret.
    const fingerprint = version?.fingerprint ?? `hmsl:${hash}`;
    const record = await ctx.reporter.report('gitguardian', `incident:${String(incident.id)}`, fingerprint, request.receivedAt);
    return { status: 200, body: { outcome: record.outcome, duplicate: record.duplicate } };
  },
};

/** GitGuardian's "send a test" message: `{matches:[{type, match}], ...}` with the matches in plain text. */
async function testMessage(matches: unknown[], request: RawRequest, ctx: ReceiverContext): Promise<Answer> {
  const tokens = matches.map((m) => (isObject(m) && isToken(m.match) ? m.match : undefined));
  if (!tokens.length || tokens.length > 100 || tokens.some((t) => t === undefined)) throw new Rejection(400, 'malformed', 'matches[].match must be strings');
  const deliveryId = `sha256:${sha256Hex(request.body)}`;
  const outcomes: string[] = [];
  for (const token of tokens as string[]) {
    const record = await ctx.reporter.reportToken('gitguardian', deliveryId, token, request.receivedAt);
    outcomes.push(record.outcome);
  }
  return { status: 200, body: { outcomes } };
}
