/**
 * What a leak receiver is: a path, its `leaks:` section, and two phases. authenticate()
 * checks the request came from the sender, touching nothing (no database, no queue, no
 * log); only then does handle() parse the body and report. A failed check throws a
 * Rejection, which the routes answer with its status and count under its reason.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CredentialRef } from '../core/credential.js';
import type { SecretValue } from '../core/secret-value.js';
import type { Runtime } from '../runtime.js';
import type { LeaksConfig } from '../config/leaks.js';
import type { GithubKeys } from './github-keys.js';
import type { HmslIndex } from './hmsl.js';
import type { ReceiverName, RejectReason } from './metrics.js';
import type { LeakReporter } from './report.js';

export interface RawRequest {
  headers: IncomingHttpHeaders;
  /** The body exactly as received: signatures are checked over these bytes, never re-serialised JSON. */
  body: Buffer;
  receivedAt: Date;
}

export interface Answer {
  status: number;
  body: unknown;
}

/** A refused request. The message is for our own debugging: never a token, never the sender's input. */
export class Rejection extends Error {
  constructor(
    readonly status: 400 | 401,
    readonly reason: RejectReason,
    message: string = reason,
  ) {
    super(message);
  }
}

export interface ReceiverContext {
  runtime: Runtime;
  reporter: LeakReporter;
  /** Resolves a `${env:NAME}` reference. @throws RekeyError REKEY_ERR_CONFIG when unset. */
  credential(ref: CredentialRef, where: string): SecretValue;
  githubKeys(config: NonNullable<LeaksConfig['github']>): GithubKeys;
  hmsl: HmslIndex;
  now(): number;
}

export interface Receiver<Section, Auth = void> {
  name: ReceiverName;
  path: string;
  section(config: LeaksConfig): Section | undefined;
  /** @throws Rejection (401) unless the request is the sender's. Records nothing. */
  authenticate(request: RawRequest, section: Section, ctx: ReceiverContext): Auth | Promise<Auth>;
  /** Parses and reports an authenticated request. @throws Rejection (400) for a malformed body. */
  handle(request: RawRequest, section: Section, ctx: ReceiverContext, auth: Auth): Promise<Answer>;
}

/** One header's value; a repeated header counts as absent (no guessing which one was signed). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** Constant-time equality of two strings of any lengths (compares their SHA-256 digests). */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const digest = (x: string | Buffer) => createHash('sha256').update(x).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** JSON is UTF-8 (RFC 8259): a body that is not is refused, never decoded with replacement characters. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses an authenticated body. A byte sequence that is not UTF-8 would otherwise become U+FFFD,
 * and a token nobody sent would be fingerprinted, recorded and answered as unknown.
 * @throws Rejection 400 malformed.
 */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(UTF8.decode(body)) as unknown;
  } catch {
    throw new Rejection(400, 'malformed', 'the body is not UTF-8 JSON');
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a Unix timestamp in seconds against our clock. @throws Rejection 401
 * stale_timestamp when it is not a number or further than `toleranceMs` away (a replay).
 */
export function checkTimestamp(text: string, nowMs: number, toleranceMs: number): void {
  if (!/^\d{1,12}(\.\d{1,9})?$/.test(text)) throw new Rejection(401, 'stale_timestamp', 'the timestamp is not a number');
  if (Math.abs(nowMs - Number(text) * 1000) > toleranceMs) throw new Rejection(401, 'stale_timestamp', 'the timestamp is outside the window');
}

export const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
