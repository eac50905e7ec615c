/**
 * A minimal client for Kong's Admin API (JSON over HTTP). Reference: Kong Gateway Admin
 * API, https://developer.konghq.com/api/gateway/admin-ee/ (consumers, key-auth credentials,
 * tags: https://developer.konghq.com/gateway/tags/). Errors never carry Kong's answer
 * text: a unique-violation message names the conflicting key.
 */
import { ProviderError } from '../../src/core/errors.js';
import type { SecretValue } from '../../src/core/secret-value.js';

export interface KongAnswer {
  status: number;
  body: unknown;
}

/** One page of a Kong list endpoint. */
interface Page<T> {
  data?: T[];
  offset?: string | null;
}

export class KongAdmin {
  readonly #base: string;

  constructor(
    adminUrl: string,
    private readonly token: SecretValue | undefined,
    private readonly timeoutMs: number,
    private readonly provider: string,
  ) {
    this.#base = adminUrl.replace(/\/+$/, '');
  }

  /**
   * Sends one request. Resolves with any status that the caller may handle (2xx, 404, 409);
   * maps the rest to ProviderError (401/403 DENIED, 429 THROTTLED, 5xx UNAVAILABLE, other INVALID).
   */
  async request(method: string, path: string, signal: AbortSignal, body?: unknown): Promise<KongAnswer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers['kong-admin-token'] = this.token.reveal();
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
        // No redirects: following one would resend the key and the admin token to wherever it points (a 3xx is INVALID).
        redirect: 'manual',
      });
    } catch (error) {
      const aborted = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError';
      throw this.error(aborted ? 'REKEY_ERR_TIMEOUT' : 'REKEY_ERR_UNAVAILABLE', `Kong Admin API ${method} ${route(path)} ${aborted ? 'timed out' : 'could not be reached'}`, error);
    }
    const text = await response.text();
    const status = response.status;
    if (status < 300 || status === 404 || status === 409) return { status, body: parse(text) };
    const where = `Kong Admin API ${method} ${route(path)} answered ${status}`;
    if (status === 401 || status === 403) {
      throw this.error('REKEY_ERR_DENIED', `${where}: the Admin API refused rekey's token (Kong-Admin-Token); see the kong README for the permissions it needs`);
    }
    if (status === 429) throw this.error('REKEY_ERR_THROTTLED', where);
    if (status >= 500) throw this.error('REKEY_ERR_UNAVAILABLE', where);
    throw this.error('REKEY_ERR_INVALID', `${where}: Kong rejected the request`);
  }

  /**
   * The text of a Prometheus `/metrics` endpoint (Kong's Status API, or the Admin API's own). The
   * admin token goes only to the Admin API's origin.
   */
  async metrics(url: string, signal: AbortSignal): Promise<string> {
    const headers: Record<string, string> = { accept: 'text/plain' };
    if (this.token && new URL(url).origin === new URL(this.#base).origin) headers['kong-admin-token'] = this.token.reveal();
    let response: Response;
    try {
      response = await fetch(url, { headers, signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]), redirect: 'manual' });
    } catch (error) {
      throw this.error('REKEY_ERR_UNAVAILABLE', 'Kong /metrics could not be read', error);
    }
    const text = await response.text();
    if (response.status !== 200) throw this.error(response.status === 401 || response.status === 403 ? 'REKEY_ERR_DENIED' : 'REKEY_ERR_UNAVAILABLE', `Kong /metrics answered ${response.status}`);
    return text;
  }

  /** Every item of a list endpoint (`GET /key-auths?tags=...`), following Kong's `offset` pagination. */
  async list<T>(path: string, query: Record<string, string>, signal: AbortSignal): Promise<T[]> {
    const items: T[] = [];
    let offset: string | undefined;
    do {
      const params = new URLSearchParams({ ...query, size: '1000', ...(offset ? { offset } : {}) });
      const answer = await this.request('GET', `${path}?${params.toString()}`, signal);
      if (answer.status !== 200) throw this.error('REKEY_ERR_UNAVAILABLE', `Kong Admin API GET ${path} answered ${answer.status}`);
      const page = answer.body as Page<T>;
      items.push(...(page.data ?? []));
      offset = page.offset ?? undefined;
    } while (offset);
    return items;
  }

  error(code: ConstructorParameters<typeof ProviderError>[0], message: string, cause?: unknown): ProviderError {
    return new ProviderError(code, message, { provider: this.provider, cause });
  }
}

/** The path without ids and query, for messages: `/consumers/{consumer}/key-auth/{id}`. */
function route(path: string): string {
  const [bare] = path.split('?');
  return bare!
    .split('/')
    .map((part, i, parts) => (i > 0 && ['consumers', 'key-auth', 'key-auths'].includes(parts[i - 1]!) ? '{id}' : part))
    .join('/');
}

function parse(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
