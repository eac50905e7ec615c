/**
 * The change stream (`GET /v1/events`, server-sent events) kept open: each connection is
 * authenticated with a fresh credential; when it ends (the credential's expiry, the server's
 * hour, a network failure) it reconnects after the server's `retry:` field (or a refusal's
 * `Retry-After`, when longer) plus a backoff with full jitter, sending `Last-Event-ID` when the server gave events an `id:`.
 * A connection silent for three of the server's keep-alives (45 s) is taken for dead and opened again.
 * A new connection starts with `ready` (the current version of every readable secret), so a
 * change missed while disconnected is seen then.
 */
import { backoff, RekeyClientError, retryAfterOf, sleep, type ClientLogger, type RetryPolicy } from './retry.js';

/** One event of the stream: names and version numbers only, never a value. */
export type SecretChange =
  | { type: 'ready'; secrets: { secret: string; version: number | null }[] }
  | { type: 'rotated' | 'revoked'; secret: string; version: number };

export interface StreamOptions {
  url: string;
  credential: () => Promise<string>;
  policy: RetryPolicy;
  log: ClientLogger;
  fetch: typeof fetch;
  /** A connection that brings nothing (no answer, no event, no keep-alive) for this long is dropped and opened again. @defaultValue 45000: three of the server's 15 s keep-alives */
  idleMs?: number;
}

/** The server sends a keep-alive comment every 15 s: three missed, the connection is taken for dead. */
const IDLE_MS = 45_000;

/** Runs until `signal` aborts, calling `listener` with every event of every connection in turn. */
export async function follow(options: StreamOptions, listener: (change: SecretChange) => void, signal: AbortSignal): Promise<void> {
  let lastEventId: string | undefined;
  let retryMs = 1000;
  let failures = 0;
  while (!signal.aborted) {
    let status: number | undefined;
    let retryAfterMs = 0;
    let open = false;
    // A connection lost without a FIN (the server's node gone, a NAT dropping the flow) brings nothing
    // more, and undici would wait 300 s for it: what the stream would say meanwhile goes unseen.
    const connection = new AbortController();
    let idle = false;
    let timer: NodeJS.Timeout | undefined;
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        connection.abort();
      }, options.idleMs ?? IDLE_MS);
    };
    alive();
    try {
      const response = await options.fetch(`${options.url}/v1/events`, {
        headers: { authorization: `Bearer ${await options.credential()}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
        // A redirect is not followed (the credential would go with it): it is a failed attempt, logged with its status.
        redirect: 'manual',
        signal: AbortSignal.any([signal, connection.signal]),
      });
      status = response.status;
      if (status !== 200 || !response.body) {
        await response.body?.cancel();
        // 429 (the subject holds its share of streams, or is over its rate limit) and 503 say when to come back.
        retryAfterMs = retryAfterOf(response);
        if (status === 401 || status === 403 || status === 404) options.log({ code: 'stream_closed', status });
      } else {
        options.log({ code: 'stream_open', status });
        open = true;
        for await (const block of blocks(response.body)) {
          alive();
          const fields = parseBlock(block);
          if (fields.id !== undefined) lastEventId = fields.id;
          if (fields.retry !== undefined && /^\d+$/.test(fields.retry)) retryMs = Number(fields.retry);
          const change = fields.event && fields.data !== undefined ? toChange(fields.event, fields.data) : undefined;
          if (!change) continue;
          failures = 0;
          options.log({ code: 'stream_event' });
          listener(change);
        }
      }
    } catch {
      if (signal.aborted) return;
    } finally {
      clearTimeout(timer);
    }
    if (idle) options.log({ code: 'stream_idle' });
    if (open) options.log({ code: 'stream_closed' });
    failures++;
    // The jitter is added to the floor, not compared with it: clients cut at once (a server restart) come back spread out.
    const delayMs = Math.max(retryMs, retryAfterMs) + backoff(options.policy, Math.min(failures, 16));
    options.log({ code: 'stream_retrying', attempt: failures, delayMs, ...(status ? { status } : {}) });
    await sleep(delayMs, signal).catch((error: unknown) => {
      if (!(error instanceof RekeyClientError)) throw error;
    });
  }
}

/** The text of each event block (up to a blank line) as it arrives. */
async function* blocks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  /** A `\r` that ended the last chunk: the next may begin with its `\n` (one line end, not two). */
  let carried = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    const text = carried + decoder.decode(chunk, { stream: true });
    carried = text.endsWith('\r') ? '\r' : '';
    buffer += (carried ? text.slice(0, -1) : text).replace(/\r\n?/g, '\n');
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      yield buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
    }
  }
}

function parseBlock(block: string): Record<string, string | undefined> {
  const fields: Record<string, string | undefined> = {};
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    fields[name] = name === 'data' && fields.data !== undefined ? `${fields.data}\n${value}` : value;
  }
  return fields;
}

function toChange(event: string, data: string): SecretChange | undefined {
  try {
    const body = JSON.parse(data) as Record<string, unknown>;
    if (event === 'ready' && Array.isArray(body.secrets)) {
      const secrets = (body.secrets as Record<string, unknown>[]).filter((s) => typeof s.secret === 'string' && (typeof s.version === 'number' || s.version === null));
      return { type: 'ready', secrets: secrets as { secret: string; version: number | null }[] };
    }
    if ((event === 'rotated' || event === 'revoked') && typeof body.secret === 'string' && typeof body.version === 'number') return { type: event, secret: body.secret, version: body.version };
  } catch {
    // not an event of ours
  }
  return undefined;
}
