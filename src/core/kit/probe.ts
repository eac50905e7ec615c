/**
 * The verify probe shared by gateway targets: send one request carrying the key in a
 * header to a URL behind the gateway and check the gateway let it through. A target
 * calls it from `verify()` so a version is promoted only once the gateway really
 * accepts it (DESIGN.md, rotation step 3).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { ProviderError } from '../errors.js';
import type { Call } from '../ports.js';
import type { SecretValue } from '../secret-value.js';

/** `probe:` in a target's config: where to send the verify request and in which header. */
export const probeSchema = z
  .object({
    /** A URL served through the gateway that needs a valid key (http or https). */
    url: z.url({ protocol: /^https?$/ }),
    /** The header the gateway reads the key from. @defaultValue `X-Api-Key` */
    header: z
      .string()
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
      .default('X-Api-Key'),
    /** Milliseconds to wait for the answer. @defaultValue 2000 */
    timeoutMs: z.number().int().positive().max(60_000).default(2000),
  })
  .strict();

export type ProbeConfig = z.infer<typeof probeSchema>;

/**
 * Sends one request with `value` in `probe.header` and resolves when the answer is 2xx.
 * Redirects are not followed, and fail: a gateway may redirect before it looks at the key
 * (plain HTTP sent to HTTPS, as Caddy's automatic HTTPS does), so a 3xx would pass any key.
 * Each probe opens a new connection, as a new client would: a kept-alive one may be
 * closed under it by a gateway reload, or still be served by an old worker. A connection
 * reset or refused before any answer is tried again within `timeoutMs` (a gateway reloads
 * right after a deploy, Caddy on every config change, and may drop the connections it
 * holds): a rotation should not pay a whole retry of its run for the reload it caused.
 * A status is final, except a refusal (401, 403) with `untilAccepted`: for targets whose
 * consumers learn of a deploy asynchronously (an API server reloading a keyset when it hears
 * of the change), the probe asks again within `timeoutMs` until the key is accepted.
 * @throws ProviderError REKEY_ERR_VERIFY_FAILED (retryable) when the gateway answers
 * anything else or cannot be reached; the message names the status, never the value.
 */
export async function probeKey(probe: ProbeConfig, value: SecretValue, call: Call, provider: string, options: { untilAccepted?: boolean } = {}): Promise<void> {
  const url = new URL(probe.url);
  // Only origin and path in messages: a query string may carry something secret.
  const where = `${url.origin}${url.pathname}`;
  const signal = AbortSignal.any([call.signal, AbortSignal.timeout(probe.timeoutMs)]);
  let status: number | undefined;
  for (let pause = FIRST_PAUSE_MS; ; pause = Math.min(2 * pause, MAX_PAUSE_MS)) {
    try {
      status = await get(url, { [probe.header]: value.reveal() }, signal);
      if (!(options.untilAccepted && isRefusal(status))) break;
    } catch (error) {
      // Time ran out asking again after a refusal: the refusal is the answer.
      if (signal.aborted && status !== undefined) break;
      if (signal.aborted || !isConnectionDropped(error)) {
        throw new ProviderError('REKEY_ERR_VERIFY_FAILED', `probe ${where} could not be completed`, { provider, cause: error });
      }
    }
    // An aborted pause ends the loop with the next attempt's own abort error.
    await delay(pause, undefined, { signal }).catch(() => undefined);
  }
  if (status >= 200 && status < 300) return;
  const why = isRefusal(status)
    ? 'the gateway does not accept the key (yet)'
    : status >= 300 && status < 400
      ? 'a redirect, which says nothing about the key (set probe.url to the https URL the gateway serves with a key)'
      : 'unexpected status';
  throw new ProviderError('REKEY_ERR_VERIFY_FAILED', `probe ${where} answered ${status}: ${why}`, { provider });
}

const FIRST_PAUSE_MS = 20;
const MAX_PAUSE_MS = 250;
/** Errors of a connection the gateway dropped or did not take (yet), before any answer. */
const DROPPED = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE']);
const isRefusal = (status: number) => status === 401 || status === 403;

function isConnectionDropped(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DROPPED.has(code);
}

function get(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<number> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: 'GET', headers, agent: false, signal }, (res) => {
      // Drain the body; only the status matters.
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
