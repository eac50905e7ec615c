/**
 * A signed webhook as a target: each deploy and retire is one POST of a version event to
 * the receiver, signed per Standard Webhooks (./signing.ts) and retried with exponential
 * backoff inside the call. The `webhook-id` is fixed per (versionId, event), so a receiver
 * that deduplicates by it processes a redelivery once, across rekey's own retries too.
 *
 * The target keeps no state of its own: what the receiver holds is known only through the
 * optional `state` URL (see README).
 */
import { randomUUID } from 'node:crypto';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, DeployedEntry, JsonObject, Target, VersionRef } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { signedHeaders } from './signing.js';
import type { WebhookConfig } from './webhook.schema.js';

export type VersionEvent = 'deployed' | 'retired';

export interface WebhookTargetOptions {
  provider: string;
  config: WebhookConfig;
  key: Buffer;
  log: Logger;
}

/** Statuses worth another attempt: timeouts, throttling, the receiver's own failures. */
const RETRY_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

export class WebhookTarget implements Target {
  readonly #o: WebhookTargetOptions;

  constructor(options: WebhookTargetOptions) {
    this.#o = options;
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

  /** The receiver's `state`, or nothing when none is configured (README: what this can report). */
  async listDeployed(call: Call): Promise<DeployedEntry[]> {
    return this.#o.config.state ? this.#state(call) : [];
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
    const id = `msg_${version.versionId}_${event}`;
    const status = await this.#send('POST', this.#o.config.url, id, body, call);
    this.#o.log.info({ secret: version.secret, versionId: version.versionId, fingerprint: version.fingerprint, event, status }, 'webhook: event delivered');
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
    const deployed = (parsed as { deployed?: unknown }).deployed;
    if (!Array.isArray(deployed)) throw this.#error('REKEY_ERR_INVALID', 'the webhook state URL must answer {"deployed": [...]}');
    return deployed.flatMap((entry: Record<string, unknown>) => {
      const pick = (k: string) => (typeof entry[k] === 'string' ? entry[k] : undefined);
      return pick('versionId') || pick('fingerprint') ? [{ versionId: pick('versionId'), fingerprint: pick('fingerprint'), consumer: pick('consumer') }] : [];
    });
  }

  /**
   * One signed request, retried on network errors, 408/425/429/5xx with exponential backoff
   * (honouring Retry-After up to maxDelayMs) until the attempts or the call's time run out.
   * Resolves with the 2xx status; other 4xx end at once (the receiver will not change its mind).
   */
  async #send(method: 'GET' | 'POST', url: string, id: string, body: string, call: Call, read?: (body: string) => void): Promise<number> {
    const { retry, timeoutMs } = this.#o.config;
    const where = redactUrl(url);
    let last = 'no attempt made';
    for (let attempt = 1; attempt <= retry.attempts; attempt++) {
      let delay = jitter(Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** (attempt - 1)));
      try {
        // Signed per attempt: the timestamp must be fresh, the id and body stay the same.
        const response = await fetch(url, {
          method,
          headers: { 'content-type': 'application/json', 'user-agent': 'rekey-webhook', ...signedHeaders(this.#o.key, id, body) },
          body: method === 'POST' ? body : undefined,
          redirect: 'manual',
          signal: AbortSignal.any([call.signal, AbortSignal.timeout(timeoutMs)]),
        });
        const text = await response.text();
        if (response.status >= 200 && response.status < 300) {
          read?.(text);
          return response.status;
        }
        last = `answered ${response.status}`;
        if (response.status === 401 || response.status === 403) {
          throw this.#error('REKEY_ERR_DENIED', `${method} ${where} ${last}: the receiver refused the signature (check the shared whsec_ secret)`);
        }
        if (!RETRY_STATUS.has(response.status)) throw this.#error('REKEY_ERR_INVALID', `${method} ${where} ${last}`);
        const after = Number(response.headers.get('retry-after'));
        if (Number.isFinite(after) && after > 0) delay = Math.min(retry.maxDelayMs, after * 1000);
      } catch (error) {
        if (error instanceof ProviderError) throw error;
        if (call.signal.aborted) throw this.#error('REKEY_ERR_TIMEOUT', `${method} ${where}: out of time after ${attempt} attempt(s)`, error);
        last = (error as Error).name === 'TimeoutError' ? `timed out after ${timeoutMs}ms` : 'could not connect';
      }
      if (attempt < retry.attempts) {
        this.#o.log.debug({ id, attempt, delayMs: delay, why: last }, 'webhook: retrying');
        if (!(await sleep(delay, call.signal))) throw this.#error('REKEY_ERR_TIMEOUT', `${method} ${where}: out of time after ${attempt} attempt(s) (${last})`);
      }
    }
    throw this.#error('REKEY_ERR_UNAVAILABLE', `${method} ${where} ${last} after ${retry.attempts} attempt(s)`);
  }

  #error(code: ErrorCode, message: string, cause?: unknown): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider, cause });
  }
}

/** Between half and all of `ms`, so many retrying rekey workers do not hit the receiver in step. */
function jitter(ms: number): number {
  return Math.round(ms / 2 + (Math.random() * ms) / 2);
}

/** Resolves true after `ms`, or false as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (result: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Origin and path only: a query string may carry a token. */
function redactUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}
