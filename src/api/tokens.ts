/**
 * Admin API tokens in PostgreSQL: created by `rekey token create` (printed once, stored as a
 * SHA-256 only), listed, revoked, and looked up by the hash of what a caller presents.
 * Tokens are in rekey's scannable key format with their own prefix, so a token pushed to a
 * repository is found by `rekey scan` and by secret scanners that know the format.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { RekeyError } from '../core/errors.js';
import { generateKey, hasValidChecksum } from '../core/key-format.js';
import type { AuditLog } from '../db/audit.js';
import type { Db } from '../db/client.js';
import { parseScope } from './scopes.js';

/** Every admin API token starts with this. */
export const TOKEN_PREFIX = 'rkadm_';

export const TOKEN_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface TokenInfo {
  id: string;
  name: string;
  scopes: string[];
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Creates a token and returns it: the only time it exists outside the caller's hands.
 * @throws RekeyError REKEY_ERR_CONFIG for a bad name or scope, or a name already used (even by a revoked token).
 */
export async function createToken(db: Db, audit: AuditLog, input: { name: string; scopes: readonly string[]; ttlMs?: number; actor: string }): Promise<{ token: string; info: TokenInfo }> {
  if (!TOKEN_NAME_PATTERN.test(input.name)) throw new RekeyError('REKEY_ERR_CONFIG', 'a token name is 1-63 characters of a-z 0-9 . _ -, starting with a letter or digit');
  const bad = input.scopes.find((s) => !parseScope(s));
  if (bad !== undefined || !input.scopes.length) throw new RekeyError('REKEY_ERR_CONFIG', 'scopes are read, rotate, revoke or admin, each optionally :<secret name glob> (e.g. rotate:payments-*)');
  const token = generateKey(TOKEN_PREFIX);
  const expiresAt = input.ttlMs === undefined ? null : new Date(Date.now() + input.ttlMs);
  const info = await db.$transaction(async (tx) => {
    if (await tx.apiToken.findUnique({ where: { name: input.name } })) throw new RekeyError('REKEY_ERR_CONFIG', `a token named ${input.name} exists (names are never reused, revoked or not)`);
    const row = await tx.apiToken.create({ data: { id: randomUUID(), name: input.name, hash: hashToken(token), scopes: [...input.scopes], expiresAt } });
    await audit.append(tx, { actor: input.actor, action: 'token.created', data: { name: row.name, scopes: row.scopes, expiresAt: expiresAt?.toISOString() ?? null } });
    return row;
  });
  return { token, info: strip(info) };
}

export async function listTokens(db: Db): Promise<TokenInfo[]> {
  return (await db.apiToken.findMany({ orderBy: { name: 'asc' } })).map(strip);
}

/** Revokes a token by name; idempotent (false when it was revoked already). @throws RekeyError REKEY_ERR_UNKNOWN */
export async function revokeToken(db: Db, audit: AuditLog, name: string, actor: string, reason = 'operator'): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const row = await tx.apiToken.findUnique({ where: { name } });
    if (!row) throw new RekeyError('REKEY_ERR_UNKNOWN', `no API token named ${name}`);
    if (row.revokedAt) return false;
    await tx.apiToken.update({ where: { id: row.id }, data: { revokedAt: new Date() } });
    await audit.append(tx, { actor, action: 'token.revoked', data: { name, reason } });
    return true;
  });
}

/**
 * The live token a caller presented, or undefined (unknown, malformed, revoked or expired:
 * one answer for all). The lookup is by SHA-256, so the database compares hashes an attacker
 * cannot steer; the found hash is compared again in constant time.
 */
export async function findToken(db: Db, presented: string, now = new Date()): Promise<TokenInfo | undefined> {
  if (!presented.startsWith(TOKEN_PREFIX) || presented.length > 100 || !hasValidChecksum(presented)) return undefined;
  const hash = hashToken(presented);
  const row = await db.apiToken.findUnique({ where: { hash } });
  if (!row || !timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(hash, 'hex'))) return undefined;
  return live(row, now);
}

/** The token of a dashboard session, by id: undefined when it is gone, revoked or expired. */
export async function findTokenById(db: Db, id: string, now = new Date()): Promise<TokenInfo | undefined> {
  const row = await db.apiToken.findUnique({ where: { id } });
  return row ? live(row, now) : undefined;
}

function live(row: TokenInfo & { hash?: string }, now: Date): TokenInfo | undefined {
  if (row.revokedAt || (row.expiresAt && row.expiresAt <= now)) return undefined;
  return strip(row);
}

function strip(row: TokenInfo & { hash?: string }): TokenInfo {
  const { hash: _hash, ...info } = row;
  return info;
}

/** What an admin API token is, revoked or not, when someone found it. */
export type TokenState = 'active' | 'expired' | 'revoked';

/**
 * The name and state of the admin API token `presented` is (found by its hash, revoked or not), for a
 * scanner's finding: undefined when it is none (another prefix, a bad checksum, or no such token).
 */
export async function foundToken(db: Db, presented: string, now = new Date()): Promise<{ name: string; state: TokenState } | undefined> {
  if (!presented.startsWith(TOKEN_PREFIX) || !hasValidChecksum(presented)) return undefined;
  const row = await db.apiToken.findUnique({ where: { hash: hashToken(presented) }, select: { name: true, revokedAt: true, expiresAt: true } });
  if (!row) return undefined;
  return { name: row.name, state: row.revokedAt ? 'revoked' : row.expiresAt && row.expiresAt <= now ? 'expired' : 'active' };
}

/**
 * A leak report of an admin API token revokes it at once (rekey eats its own cooking): the
 * token is found by its hash, revoked or not, and revoked with the reason `leaked`.
 * @returns the token's name when it was one, else undefined.
 */
export async function revokeLeakedToken(db: Db, audit: AuditLog, presented: string, actor: string): Promise<string | undefined> {
  if (!presented.startsWith(TOKEN_PREFIX)) return undefined;
  const row = await db.apiToken.findUnique({ where: { hash: hashToken(presented) }, select: { name: true } });
  if (!row) return undefined;
  await revokeToken(db, audit, row.name, actor, 'leaked');
  return row.name;
}
