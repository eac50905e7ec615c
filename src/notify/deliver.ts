/**
 * One delivery of one notice to one destination, one attempt (the queue retries):
 * - `webhook`: a JSON POST signed per Standard Webhooks (`webhook-id` = the notice's stable id,
 *   `webhook-timestamp`, `webhook-signature` = v1 HMAC-SHA256 over `id.timestamp.body`), body
 *   `{ type: "rekey.<type>", timestamp, data: { id, secret, ...data } }`;
 * - `slack`: `{ text }` for a Slack-compatible incoming webhook (no signature: its URL is the credential).
 * Errors name the destination and the status, never the URL (a Slack URL is its token).
 */
import { RekeyError } from '../core/errors.js';
import { outboundUrlProblem } from '../core/kit/outbound-url.js';
import { retryAfterMs } from '../core/kit/retry-after.js';
import { signedHeaders, signingKey } from '../core/kit/standard-webhooks.js';
import type { Notice, NoticeType } from '../core/notify.js';
import { readCredential } from '../config/environment.js';
import type { Destination } from '../config/notifications.js';

/** Statuses worth another attempt: timeouts, throttling, the receiver's own failures. */
const RETRY_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

const TITLES: Record<NoticeType, string> = {
  'rotation.failed': 'Rotation failed',
  'run.stuck': 'Run stuck past its retry budget',
  'leak.received': 'Leak report received',
  'leak.blocked': 'Leaked key blocked',
  'secret.no-current': 'Secret has no current version',
  'drift.repeated': 'Target keeps drifting',
  'store.drift': "Store's current version is not rekey's",
  'audit.verify-failed': 'Audit log verification failed',
  'rotation.due': 'Rotation due',
  'usage.anomaly': 'Key usage anomaly',
  'version.still-used': 'Previous key still in use',
};

/** The body a webhook destination receives. */
export function webhookBody(notice: Notice): string {
  return JSON.stringify({ type: `rekey.${notice.type}`, timestamp: notice.at, data: { id: notice.id, secret: notice.secret, ...notice.data } });
}

/** The message a Slack destination receives: a title, the secret, the fields, the id. */
export function slackText(notice: Notice): string {
  const fields = Object.entries(notice.data)
    .filter(([, value]) => value !== null && value !== '')
    .map(([key, value]) => `${key}: ${String(value)}`);
  const lines = [`*rekey: ${TITLES[notice.type]}*${notice.secret ? ` ${notice.secret}` : ''}`, fields.join(', '), `id ${notice.id}`];
  // Slack's mrkdwn reads these three as markup.
  return lines.filter(Boolean).join('\n').replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/**
 * Delivers `notice` to the destination `name`; resolves with the 2xx status.
 * @throws RekeyError UNAVAILABLE / TIMEOUT / THROTTLED (retryable) for network errors, timeouts,
 *   408/425/429 and 5xx; INVALID, DENIED or CONFIG (not retryable) for any other answer, a bad
 *   secret or a URL rekey may not send to.
 */
export async function deliver(notice: Notice, name: string, destination: Destination, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const where = `notifications.destinations.${name}`;
  if (destination.type === 'webhook') {
    const key = signingKey(readCredential(destination.secret, env, `${where}.secret`), where);
    const body = webhookBody(notice);
    return post(destination.url, { ...signedHeaders(key, notice.id, body), 'content-type': 'application/json' }, body, destination.timeout, where);
  }
  const url = readCredential(destination.url, env, `${where}.url`).reveal();
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RekeyError('REKEY_ERR_CONFIG', `${where}.url: its variable does not hold a URL`);
  }
  const problem = outboundUrlProblem(parsed, destination.insecure);
  if (problem) throw new RekeyError('REKEY_ERR_CONFIG', `${where}.url ${problem}`);
  return post(url, { 'content-type': 'application/json' }, JSON.stringify({ text: slackText(notice) }), destination.timeout, where);
}

async function post(url: string, headers: Record<string, string>, body: string, timeoutMs: number, where: string): Promise<number> {
  let status: number;
  let retryAfter: string | null;
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'user-agent': 'rekey-notifications' },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = response.status;
    retryAfter = response.headers.get('retry-after');
    await response.body?.cancel();
  } catch (error) {
    // fetch's errors may quote the URL, and a Slack URL is its token: our words only.
    if ((error as Error).name === 'TimeoutError') throw new RekeyError('REKEY_ERR_TIMEOUT', `${where} did not answer within ${timeoutMs} ms`);
    throw new RekeyError('REKEY_ERR_UNAVAILABLE', `${where} could not be reached`);
  }
  if (status >= 200 && status < 300) return status;
  const answered = `${where} answered ${status}`;
  // A 429 or 503 may say when to come back: the queue's backoff waits at least that long.
  const later = status === 429 || status === 503 ? { retryAfterMs: retryAfterMs(retryAfter) } : {};
  if (status === 429) throw new RekeyError('REKEY_ERR_THROTTLED', answered, later);
  if (RETRY_STATUS.has(status)) throw new RekeyError('REKEY_ERR_UNAVAILABLE', answered, later);
  if (status === 401 || status === 403) throw new RekeyError('REKEY_ERR_DENIED', `${answered}: the receiver refused the request (check the signing secret or the URL)`);
  throw new RekeyError('REKEY_ERR_INVALID', answered);
}
