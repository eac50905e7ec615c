/**
 * A signed webhook as a target: each deploy and retire is one POST of a version event to
 * the receiver, signed per Standard Webhooks (src/core/kit/standard-webhooks.ts), one attempt per call; the engine retries.
 * The `webhook-id` is fixed per (versionId, event), so a receiver that deduplicates by it
 * processes a redelivery once, however often rekey retries; a drift repair adds its generation
 * (Call.generation), so the receiver processes it although it saw that event for that version before.
 *
 * The target keeps no state of its own: what the receiver holds is known only through the
 * optional `state` URL (see README).
 */
import { randomUUID } from 'node:crypto';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, DeployedEntry, Inspection, JsonObject, Target, VersionRef } from '../../src/core/ports.js';
import { retryAfterMs } from '../../src/core/kit/retry-after.js';
import { sharedRead } from '../../src/core/kit/serial.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { signedHeaders } from '../../src/core/kit/standard-webhooks.js';
import type { WebhookConfig } from './webhook.schema.js';

export type VersionEvent = 'deployed' | 'retired';

export interface WebhookTargetOptions {
  provider: string;
  config: WebhookConfig;
  key: Buffer;
  log: Logger;
}

/** Statuses worth another attempt (besides 429, THROTTLED): timeouts, the receiver's own failures. */
const RETRY_STATUS = new Set([408, 425, 500, 502, 503, 504]);

export class WebhookTarget implements Target {
  readonly #o: WebhookTargetOptions;
  /**
   * The receiver's `state` (one GET shared by every binding of the receiver). Only with a state
   * URL: without one there is nothing to read, and the drift check probes with verify() instead.
   */
  readonly inspect?: (call: Call) => Promise<Inspection>;

  constructor(options: WebhookTargetOptions) {
    this.#o = options;
    const state = options.config.state;
    if (state) this.inspect = async (call) => ({ entries: await sharedRead(`webhook:${state}`, () => this.#state(call)), holds: 'all' });
  }

  /** POSTs `deployed` (with the value only when includeValue is on). */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    await this.#deliver(version, 'deployed', this.#o.config.includeValue ? value : undefined, call);
  }

  /**
   * With `state`: the receiver must list the version. Without it there is nothing to ask: the 2xx
   * the receiver gave the delivery is the only evidence, and deploy() already required it.
   */
  async verify(version: VersionRef, _value: SecretValue, call: Call): Promise<void> {
    if (!this.#o.config.state) return;
    const held = await this.#state(call);
    if (!held.some((entry) => entry.versionId === version.versionId)) {
      throw this.#error('REKEY_ERR_VERIFY_FAILED', `the receiver's state does not list version ${version.number} of ${version.secret}`);
    }
  }

  /** POSTs `retired` (never with a value). Idempotent as far as the receiver deduplicates by webhook-id. */
  async retire(version: VersionRef, call: Call): Promise<void> {
    await this.#deliver(version, 'retired', undefined, call);
  }

  async #deliver(version: VersionRef, event: VersionEvent, value: SecretValue | undefined, call: Call): Promise<void> {
    const data: JsonObject = {
      event,
      secret: version.secret,
      versionId: version.versionId,
      number: version.number,
      consumer: version.consumer,
      fingerprint: version.fingerprint,
    };
    if (value) data.value = value.reveal();
    // The Standard Webhooks envelope: type, timestamp, data.
    const body = JSON.stringify({ type: `rekey.version.${event}`, timestamp: new Date().toISOString(), data });
    // A repair's own id: a late `deployed` may have landed after the `retired` this repeats.
    const id = call.generation ? `msg_${version.versionId}_${event}_${call.generation}` : `msg_${version.versionId}_${event}`;
    const status = await this.#send('POST', this.#o.config.url, id, body, call);
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, event, status }, 'webhook: event delivered');
  }

  async #state(call: Call): Promise<DeployedEntry[]> {
    const url = this.#o.config.state!;
    let text = '';
    await this.#send('GET', url, `state_${randomUUID()}`, '', call, (body) => (text = body));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw this.#error('REKEY_ERR_INVALID', 'the webhook state URL did not answer JSON');
    }
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    const deployed = isObject(parsed) ? parsed.deployed : undefined;
    if (!Array.isArray(deployed) || !deployed.every(isObject)) throw this.#error('REKEY_ERR_INVALID', 'the webhook state URL must answer {"deployed": [{...}, ...]}');
    return deployed.flatMap((entry) => {
      const pick = (k: string) => (typeof entry[k] === 'string' ? entry[k] : undefined);
      return pick('versionId') || pick('fingerprint') ? [{ versionId: pick('versionId'), fingerprint: pick('fingerprint'), consumer: pick('consumer') }] : [];
    });
  }

  /**
   * One signed request, one attempt: retrying is the engine's job (the secret's `retry` for
   * rotation steps, the leak path's schedule for takedowns), with the same `webhook-id` each
   * time. Resolves with the 2xx status. Network errors, timeouts, 408/425/429 and 5xx throw
   * retryable errors; 401/403 DENIED and other statuses INVALID, which no retry would change.
   */
  async #send(method: 'GET' | 'POST', url: string, id: string, body: string, call: Call, read?: (body: string) => void): Promise<number> {
    const { timeoutMs } = this.#o.config;
    const where = redactUrl(url);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: { 'content-type': 'application/json', 'user-agent': 'rekey-webhook', ...signedHeaders(this.#o.key, id, body) },
        body: method === 'POST' ? body : undefined,
        redirect: 'manual',
        signal: AbortSignal.any([call.signal, AbortSignal.timeout(timeoutMs)]),
      });
      text = await response.text();
    } catch (error) {
      if (call.signal.aborted) throw this.#error('REKEY_ERR_TIMEOUT', `${method} ${where}: the call ran out of time`, error);
      if ((error as Error).name === 'TimeoutError') throw this.#error('REKEY_ERR_TIMEOUT', `${method} ${where} timed out after ${timeoutMs}ms`, error);
      throw this.#error('REKEY_ERR_UNAVAILABLE', `${method} ${where}: could not connect`, error);
    }
    if (response.status >= 200 && response.status < 300) {
      read?.(text);
      return response.status;
    }
    const answered = `${method} ${where} answered ${response.status}`;
    if (response.status === 401 || response.status === 403) throw this.#error('REKEY_ERR_DENIED', `${answered}: the receiver refused the signature (check the shared whsec_ secret)`);
    // A 429 or 503 may say when to come back: the engine's next attempt waits at least that long.
    const later = response.status === 429 || response.status === 503 ? retryAfterMs(response.headers.get('retry-after')) : undefined;
    if (response.status === 429) throw this.#error('REKEY_ERR_THROTTLED', answered, undefined, later);
    if (RETRY_STATUS.has(response.status)) throw this.#error('REKEY_ERR_UNAVAILABLE', answered, undefined, later);
    throw this.#error('REKEY_ERR_INVALID', answered);
  }

  #error(code: ErrorCode, message: string, cause?: unknown, retryAfterMs?: number): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider, cause, retryAfterMs });
  }
}

/** Origin and path only: a query string may carry a token. */
function redactUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}
