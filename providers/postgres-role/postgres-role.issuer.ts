import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, IssuedRef, Issuer, JsonObject, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { PostgresRoleIssuerBinding } from './postgres-role.schema.js';
import { chooseRole, formatMarker, ident, literal, readRoles, type RoleInfo } from './roles.js';
import { scramVerifier } from './scram.js';

/** What the issuer needs from its instance. */
export interface PostgresRoleSession {
  provider: string;
  log: Logger;
  /** Runs `work` in a transaction on the managing connection. */
  transaction<T>(work: (client: pg.ClientBase) => Promise<T>): Promise<T>;
  /** Where clients connect, without credentials. */
  clientUrl(): URL;
}

/**
 * Rotates PostgreSQL login passwords. `alternating` (default) keeps two login roles
 * `<role>_a` / `<role>_b` and sets each new password on the one not in use, so the old
 * password stays valid until revoke; `single` changes one role's password in place.
 * Passwords reach the server only as SCRAM verifiers; revoke replaces the password with
 * an unknown one, only if the role still holds the revoked version (see roles.ts).
 */
export class PostgresRoleIssuer implements Issuer {
  constructor(
    private readonly session: PostgresRoleSession,
    private readonly params: PostgresRoleIssuerBinding,
  ) {}

  async issue(version: VersionRef, call: Call): Promise<{ value: SecretValue; state: JsonObject }> {
    const password = randomBytes(32).toString('base64url');
    const verifier = await scramVerifier(password);
    const role = await this.run(version, 'issue', call, async (client) => {
      await lockFamily(client, this.params.role);
      const roles = await readRoles(client, this.family());
      const chosen = roles.length === 2 ? chooseRole(roles as [RoleInfo, RoleInfo], version.versionId) : roles[0]!;
      const self = await client.query<{ user: string }>('SELECT current_user AS user');
      if (chosen.name === self.rows[0]?.user) throw this.error('REKEY_ERR_CONFIG', version, `role ${chosen.name} is rekey's own managing user`);
      if (!chosen.exists) {
        if (!this.params.create) throw this.error('REKEY_ERR_NOT_FOUND', version, `role ${chosen.name} does not exist and create is false`);
        this.session.log.info({ versionId: version.versionId, role: chosen.name }, 'creating login role');
        await client.query(`CREATE ROLE ${ident(chosen.name)} LOGIN`);
        for (const group of this.params.memberOf) await client.query(`GRANT ${ident(group)} TO ${ident(chosen.name)}`);
      }
      await client.query(`ALTER ROLE ${ident(chosen.name)} WITH LOGIN PASSWORD ${literal(verifier)}`);
      const marker = formatMarker({ status: 'live', versionId: version.versionId, at: Date.now() });
      await client.query(`COMMENT ON ROLE ${ident(chosen.name)} IS ${literal(marker)}`);
      return chosen.name;
    });
    return { value: SecretValue.of(this.format(role, password)), state: { role, strategy: this.params.strategy } };
  }

  /**
   * Logs in as the role with the new password. Unless allowTrustAuth, also checks that a wrong
   * password is refused: against a `trust` pg_hba rule a login proves nothing.
   */
  async verify(version: IssuedRef, value: SecretValue, call: Call): Promise<void> {
    const credentials = this.parse(value);
    if (!credentials) throw this.error('REKEY_ERR_VERIFY_FAILED', version, `the value is not in the ${this.params.format} format`, false);
    const { username, password } = credentials;
    const role = typeof version.issuerState.role === 'string' ? version.issuerState.role : username;
    if (role !== username) throw this.error('REKEY_ERR_VERIFY_FAILED', version, `value names role ${username}, state ${role}`, false);
    const login = await this.login(username, password, call);
    if (login !== true) {
      throw this.error(login === 'denied' ? 'REKEY_ERR_VERIFY_FAILED' : 'REKEY_ERR_UNAVAILABLE', version, `login as ${username} failed`);
    }
    if (!this.params.allowTrustAuth && (await this.login(username, randomBytes(24).toString('base64url'), call)) === true) {
      throw this.error(
        'REKEY_ERR_INVALID',
        version,
        `the server let ${username} in with a wrong password (pg_hba trust?); require scram-sha-256 for clients or set allowTrustAuth`,
      );
    }
  }

  /**
   * Replaces the role's password with an unknown one if it still holds this version, then (with
   * terminateSessions) ends the role's sessions. Idempotent: a repeat ends the sessions again as
   * long as the role still holds this version, revoked. With no role in the state (an issue whose
   * answer was lost), the family's role whose marker names this version is the one: left live, the
   * next issue would take it for the previous version and overwrite the current one's role instead.
   */
  async revoke(version: IssuedRef, call: Call): Promise<void> {
    const stated = version.issuerState.role;
    const revoked = await this.run(version, 'revoke', call, async (client) => {
      await lockFamily(client, this.params.role);
      const roles = await readRoles(client, typeof stated === 'string' ? [stated] : this.family());
      const info = roles.find((r) => r.exists && r.marker?.versionId === version.versionId);
      if (!info?.marker) return undefined;
      if (info.marker.status === 'revoked') return info.name;
      const unknown = await scramVerifier(randomBytes(32).toString('base64url'));
      await client.query(`ALTER ROLE ${ident(info.name)} WITH PASSWORD ${literal(unknown)}`);
      const marker = formatMarker({ status: 'revoked', versionId: version.versionId, at: Date.now() });
      await client.query(`COMMENT ON ROLE ${ident(info.name)} IS ${literal(marker)}`);
      return info.name;
    });
    // A new password does not end sessions opened with the old one; for a leak, this does. Only
    // after COMMIT: pg_terminate_backend signals at once, while new logins check the old password
    // until the ALTER ROLE commits, so a client reconnecting in between would keep a session.
    if (revoked && this.params.terminateSessions) {
      await this.run(version, 'revoke', call, (client) =>
        client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [revoked]),
      );
    }
  }

  /** The login roles this binding manages: `<role>_a` and `<role>_b`, or the one role. */
  private family(): string[] {
    return this.params.strategy === 'single' ? [this.params.role] : [`${this.params.role}_a`, `${this.params.role}_b`];
  }

  private format(username: string, password: string): string {
    if (this.params.format === 'json') return JSON.stringify({ username, password });
    const url = this.session.clientUrl();
    url.username = username;
    url.password = password;
    return url.toString();
  }

  private parse(value: SecretValue): { username: string; password: string } | undefined {
    try {
      if (this.params.format === 'url') {
        const url = new URL(value.reveal());
        return { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
      }
      const parsed = JSON.parse(value.reveal()) as { username?: unknown; password?: unknown };
      if (typeof parsed.username === 'string' && typeof parsed.password === 'string') {
        return { username: parsed.username, password: parsed.password };
      }
    } catch {
      // Malformed: reported by the caller without the text.
    }
    return undefined;
  }

  /** true, 'denied' (auth refused) or 'unreachable'. */
  private async login(user: string, password: string, call: Call): Promise<true | 'denied' | 'unreachable'> {
    const url = this.session.clientUrl();
    url.username = user;
    url.password = password;
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    const abort = () => void client.end().catch(() => undefined);
    call.signal.addEventListener('abort', abort, { once: true });
    try {
      await client.connect();
      const { rows } = await client.query<{ current_user: string }>('SELECT current_user');
      return rows[0]?.current_user === user ? true : 'denied';
    } catch (error) {
      const code = (error as { code?: string }).code;
      // 28P01 invalid_password, 28000 invalid_authorization_specification (no pg_hba entry, NOLOGIN).
      return code === '28P01' || code === '28000' ? 'denied' : 'unreachable';
    } finally {
      call.signal.removeEventListener('abort', abort);
      await client.end().catch(() => undefined);
    }
  }

  private async run<T>(version: VersionRef, step: string, call: Call, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const aborted = () => this.error('REKEY_ERR_TIMEOUT', version, `${step} aborted`);
    if (call.signal.aborted) throw aborted();
    try {
      return await this.session.transaction(async (client) => {
        const result = await work(client);
        // rekey has given up on this call (its timeout): roll back rather than commit what nobody will record.
        if (call.signal.aborted) throw aborted();
        return result;
      });
    } catch (error) {
      if (error instanceof ProviderError) throw error;
      const code = classify(error);
      const hint = code === 'REKEY_ERR_DENIED' ? ' (the managing user needs CREATEROLE; see the README)' : '';
      throw this.error(code, version, `${step} on role ${this.params.role} failed${hint}`, undefined, error);
    }
  }

  private error(code: ErrorCode, version: VersionRef, why: string, retryable?: boolean, cause?: unknown): ProviderError {
    return new ProviderError(code, `secret ${version.secret} version ${version.versionId}: ${why}`, {
      provider: this.session.provider,
      ...(retryable === undefined ? {} : { retryable }),
      cause,
    });
  }
}

/** Serializes issue and revoke on one role family across workers (released at commit). */
async function lockFamily(client: pg.ClientBase, family: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('rekey:postgres-role:' || $1))`, [family]);
}

function classify(error: unknown): ErrorCode {
  const code = String((error as { code?: string }).code ?? '');
  if (code === '42501' || code.startsWith('28')) return 'REKEY_ERR_DENIED'; // insufficient_privilege, auth
  if (code === '40001' || code === '40P01' || code === '55P03') return 'REKEY_ERR_CONFLICT'; // serialization, deadlock, lock
  if (code === '57014') return 'REKEY_ERR_TIMEOUT'; // query_canceled
  // connection, resources, shutdown; network errors; read-only (a standby, or a primary demoted by a failover the front has not followed yet)
  if (/^(08|53|57)/.test(code) || code === '25006' || !code) return 'REKEY_ERR_UNAVAILABLE';
  return 'REKEY_ERR_INVALID';
}
