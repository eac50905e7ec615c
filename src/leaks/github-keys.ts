/**
 * GitHub's secret scanning public keys, in GitHub's own format
 * (https://api.github.com/meta/public_keys/secret_scanning):
 * `{"public_keys":[{"key_identifier":"<hex>","key":"-----BEGIN PUBLIC KEY-----...","is_current":true}]}`,
 * read from a file or fetched from a URL and cached. refresh() reads it again: the
 * housekeeping job `github-keys` calls it every `refresh` (5 minutes by default, so a key
 * GitHub withdraws stops being accepted within minutes; src/leaks/routes.ts). A request
 * naming a key id we do not know triggers an early refresh at once (GitHub rotated its key),
 * at most one per `minRefresh` and never within EARLY_FLOOR_MS of any fetch (a flood of
 * made-up ids must not become a flood of fetches). Regular refreshes do not count against
 * `minRefresh`, so one just before an unknown id never delays its fetch by a minute.
 * A failed refresh keeps the keys we had.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { SecretValue } from '../core/secret-value.js';

/** Enough for GitHub's few keys; anything bigger is not a key list. */
const MAX_DOCUMENT_BYTES = 256 * 1024;
const FETCH_TIMEOUT_MS = 10_000;
/** No early refresh within this long of any fetch (or `minRefresh`, if shorter): the document was just read. */
const EARLY_FLOOR_MS = 10_000;

export interface GithubKeysOptions {
  /** A file path or an http(s) URL. */
  source: string;
  /** At most one early refresh (for an unknown key id) per this long. */
  minRefreshMs: number;
  /** Sent as a bearer token to api.github.com, if given. */
  token?: () => SecretValue | undefined;
  log: Logger;
  now?: () => number;
}

export class GithubKeys {
  private keys = new Map<string, KeyObject>();
  private loadedAt: number | undefined;
  private attemptedAt: number | undefined;
  private earlyAt: number | undefined;
  private etag: string | undefined;
  private loading: Promise<void> | undefined;

  constructor(private readonly options: GithubKeysOptions) {}

  /** Whether a key document was ever loaded: until then no key id is known, and none is refused as unknown. */
  get loaded(): boolean {
    return this.loadedAt !== undefined;
  }

  /** The P-256 public key GitHub names `id`, or undefined when there is none (after at most one refresh). */
  async get(id: string): Promise<KeyObject | undefined> {
    // A load under way (the first one, or one an unknown id started) may bring this key.
    if (this.loading) await this.loading;
    if (this.loadedAt === undefined && this.mayRefresh(this.now())) await this.refresh();
    let key = this.keys.get(id);
    if (!key && this.mayRefreshEarly(this.now())) {
      this.earlyAt = this.now();
      await this.refresh();
      key = this.keys.get(id);
    }
    return key;
  }

  /** Loads the keys now (single flight). Never throws: a failure is logged and the old keys stay. */
  refresh(): Promise<void> {
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private mayRefresh(now: number): boolean {
    return this.attemptedAt === undefined || now - this.attemptedAt >= this.options.minRefreshMs;
  }

  private mayRefreshEarly(now: number): boolean {
    const floor = Math.min(EARLY_FLOOR_MS, this.options.minRefreshMs);
    if (this.attemptedAt !== undefined && now - this.attemptedAt < floor) return false;
    return this.earlyAt === undefined || now - this.earlyAt >= this.options.minRefreshMs;
  }

  private async load(): Promise<void> {
    this.attemptedAt = this.now();
    try {
      const text = await this.read();
      if (text !== undefined) this.keys = parseKeys(text);
      this.loadedAt = this.now();
      this.options.log.debug({ source: describeSource(this.options.source), keys: this.keys.size }, 'github secret scanning keys loaded');
    } catch (error) {
      this.options.log.warn(
        { source: describeSource(this.options.source), error: describeError(error) },
        'could not load github secret scanning keys; keeping the previous ones',
      );
    }
  }

  /** The document's text, or undefined when the server says it has not changed (ETag). */
  private async read(): Promise<string | undefined> {
    const { source } = this.options;
    if (!/^https?:\/\//.test(source)) {
      const text = await readFile(source, 'utf8');
      if (text.length > MAX_DOCUMENT_BYTES) throw new Error('the key file is larger than 256 KiB');
      return text;
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.options.token?.();
    if (token) headers.authorization = `Bearer ${token.reveal()}`;
    if (this.etag && this.keys.size) headers['if-none-match'] = this.etag;
    const response = await fetch(source, { headers, redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (response.status === 304) return undefined;
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const text = await response.text();
    if (text.length > MAX_DOCUMENT_BYTES) throw new Error('the key document is larger than 256 KiB');
    this.etag = response.headers.get('etag') ?? undefined;
    return text;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }
}

/**
 * Parses GitHub's key document; keeps every ECDSA P-256 key (current or not: GitHub signs
 * with the current one, but a delivery signed just before a rotation names the old one).
 * @throws Error when the document holds no usable key.
 */
export function parseKeys(text: string): Map<string, KeyObject> {
  const document = JSON.parse(text) as { public_keys?: unknown };
  if (!Array.isArray(document.public_keys)) throw new Error('no public_keys array');
  const keys = new Map<string, KeyObject>();
  for (const entry of document.public_keys as unknown[]) {
    const { key_identifier: id, key: pem } = (entry ?? {}) as { key_identifier?: unknown; key?: unknown };
    if (typeof id !== 'string' || typeof pem !== 'string') continue;
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') keys.set(id, key);
    } catch {
      // not a PEM public key: skipped, like any entry we cannot use
    }
  }
  if (!keys.size) throw new Error('no ECDSA P-256 key in public_keys');
  return keys;
}

/** A source fit for a log line: a URL without its query string or credentials. */
function describeSource(source: string): string {
  try {
    const url = new URL(source);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return source;
  }
}
