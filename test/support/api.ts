/** Calls the admin API of a harness's server with a token, and makes tokens for tests. */
import { createToken } from '../../src/api/tokens.js';
import type { Harness } from './harness.js';

export interface Answer {
  status: number;
  contentType: string;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- answers are checked field by field
}

export async function call(h: Harness, path: string, options: { token?: string; method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${h.serving!.url}${path}`, { method: options.method ?? 'GET', headers, ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}) });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', headers: response.headers, text, json };
}

/** A token with `scopes`, created as `rekey token create` does. */
export async function tokenFor(h: Harness, name: string, scopes: string[], ttlMs?: number): Promise<string> {
  const { token } = await createToken(h.runtime.db, h.runtime.audit, { name, scopes, actor: 'test', ...(ttlMs === undefined ? {} : { ttlMs }) });
  return token;
}
