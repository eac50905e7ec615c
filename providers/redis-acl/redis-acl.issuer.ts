import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Call, IssuedRef, Issuer, JsonObject, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { RedisAclConfig, RedisAclIssuerBinding } from './redis-acl.schema.js';

/** What the issuer needs from its instance: the managing connection and the server's address. */
export interface RedisAclSession {
  provider: string;
  persist: RedisAclConfig['persist'];
  /** The managing connection (shared by the instance, opened on first use). */
  admin(): Redis;
  /** A fresh, unauthenticated connection to the same server, for verify. */
  probe(): Redis;
}

/**
 * Rotates one ACL user's password. Redis users hold several passwords at once, so the
 * overlap is native: issue adds a password, revoke removes one. Passwords travel to Redis
 * only as their SHA-256 (`#<hex>` to add, `!<hex>` to remove), which is also what Redis
 * stores and what the issuer state keeps, so revoke needs no value. The plaintext leaves
 * the process only in verify's AUTH.
 */
export class RedisAclIssuer implements Issuer {
  constructor(
    private readonly session: RedisAclSession,
    private readonly params: RedisAclIssuerBinding,
  ) {}

  async issue(version: VersionRef, call: Call): Promise<{ value: SecretValue; state: JsonObject }> {
    const password = randomBytes(32).toString('base64url');
    const sha256 = createHash('sha256').update(password).digest('hex');
    const { user, rules } = this.params;
    await this.run(version, 'issue', call, async (admin) => {
      const exists = (await admin.call('ACL', 'GETUSER', user)) !== null;
      // `on` and the rules only for a user rekey creates: an existing user keeps what its operator
      // gave it, `off` included (a user turned off in an incident stays off; verify then fails).
      await admin.call('ACL', 'SETUSER', user, `#${sha256}`, ...(exists ? [] : ['on', ...rules]));
      await this.persist(admin);
    });
    // A SHA-256 of 256 random bits cannot be reversed or guessed, so it is safe in public state.
    return { value: SecretValue.of(password), state: { user, sha256 } };
  }

  /** Authenticates as the user with the new password on a fresh connection. */
  async verify(version: IssuedRef, value: SecretValue, call: Call): Promise<void> {
    const user = stateUser(version.issuerState) ?? this.params.user;
    const probe = this.session.probe();
    try {
      await withSignal(probe.connect(), call.signal, this.session.provider);
      await withSignal(probe.call('AUTH', user, value.reveal()), call.signal, this.session.provider);
    } catch (error) {
      const code = classify(error);
      throw new ProviderError(
        code === 'REKEY_ERR_DENIED' ? 'REKEY_ERR_VERIFY_FAILED' : code,
        `secret ${version.secret} version ${version.versionId}: AUTH as ACL user ${user} failed`,
        // Not ioredis's error itself: it keeps the command's arguments (`command.args`), AUTH's password among them.
        { provider: this.session.provider, cause: error instanceof Error ? new Error(error.message) : undefined },
      );
    } finally {
      probe.disconnect();
    }
  }

  /** Removes this version's password hash; an absent user or hash is success. Never creates a user. */
  async revoke(version: IssuedRef, call: Call): Promise<void> {
    const user = stateUser(version.issuerState);
    const sha256 = version.issuerState.sha256;
    if (!user || typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) return;
    await this.run(version, 'revoke', call, async (admin) => {
      const passwords = parseUser(await admin.call('ACL', 'GETUSER', user))?.passwords ?? [];
      if (!passwords.includes(sha256)) return;
      try {
        await admin.call('ACL', 'SETUSER', user, `!${sha256}`);
      } catch (error) {
        // Removed concurrently between GETUSER and SETUSER: already gone is success.
        if (!/password you are trying to remove .* does not exist/i.test(String((error as Error).message))) throw error;
      }
      await this.persist(admin);
    });
  }

  private async persist(admin: Redis): Promise<void> {
    if (this.session.persist === 'acl-save') await admin.call('ACL', 'SAVE');
    if (this.session.persist === 'config-rewrite') await admin.call('CONFIG', 'REWRITE');
  }

  private async run(version: VersionRef, step: string, call: Call, work: (admin: Redis) => Promise<void>): Promise<void> {
    try {
      await withSignal(work(this.session.admin()), call.signal, this.session.provider);
    } catch (error) {
      const code = classify(error);
      const hint = code === 'REKEY_ERR_DENIED' ? ' (the managing user needs +acl|getuser +acl|setuser)' : '';
      throw new ProviderError(code, `secret ${version.secret} version ${version.versionId}: ${step} on ACL user ${this.params.user} failed${hint}`, {
        provider: this.session.provider,
        cause: error,
      });
    }
  }
}

function stateUser(state: JsonObject): string | undefined {
  return typeof state.user === 'string' && state.user !== 'default' ? state.user : undefined;
}

/** ACL GETUSER's flat [name, value, ...] reply as a record; null when the user does not exist. */
function parseUser(reply: unknown): { passwords: string[] } | undefined {
  if (!Array.isArray(reply)) return undefined;
  const index = reply.indexOf('passwords');
  const passwords: unknown = index >= 0 ? reply[index + 1] : [];
  return { passwords: Array.isArray(passwords) ? passwords.map(String) : [] };
}

function classify(error: unknown): ErrorCode {
  if (error instanceof ProviderError) return error.code;
  const message = String((error as Error | undefined)?.message ?? '');
  if (/^(WRONGPASS|NOAUTH|NOPERM)/.test(message)) return 'REKEY_ERR_DENIED';
  if (/^(LOADING|BUSY|TRYAGAIN|MASTERDOWN)/.test(message)) return 'REKEY_ERR_UNAVAILABLE';
  if (/^[A-Z]+ /.test(message)) return 'REKEY_ERR_INVALID';
  return 'REKEY_ERR_UNAVAILABLE'; // connection refused, reset, closed, retries exhausted
}

/** Rejects with REKEY_ERR_TIMEOUT when the call's signal aborts first (ioredis takes no signal). */
function withSignal<T>(work: Promise<T>, signal: AbortSignal, provider: string): Promise<T> {
  const timeout = () => new ProviderError('REKEY_ERR_TIMEOUT', 'redis call aborted', { provider });
  if (signal.aborted) return Promise.reject(timeout());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(timeout());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
