/**
 * postgres-role: rotates PostgreSQL login passwords, with two alternating login roles (old
 * password valid until revoke) or one role changed in place.
 */
import pg from 'pg';
import { inTransaction, poolTimeouts, type PoolTimeouts, watchConnections } from '../../src/core/kit/sql-pool.js';
import { defineProvider, type ProviderContext, type ProviderInstance } from '../../src/core/provider.js';
import { PostgresRoleIssuer, type PostgresRoleSession } from './postgres-role.issuer.js';
import {
  postgresRoleConfig,
  postgresRoleIssuerBinding,
  type PostgresRoleConfig,
  type PostgresRoleIssuerBinding,
} from './postgres-role.schema.js';

export { scramVerifier } from './scram.js';

/** Connection parameters that hold credentials (libpq's names, which node-postgres reads from a URL's query). */
const CREDENTIAL_PARAMS = ['user', 'password', 'sslpassword'];

export default defineProvider<PostgresRoleConfig, never, PostgresRoleIssuerBinding>({
  type: 'postgres-role',
  summary: 'PostgreSQL login passwords: alternating _a/_b roles or one role, set as SCRAM verifiers, verified by logging in',
  config: postgresRoleConfig,
  bindings: { issuer: postgresRoleIssuerBinding },
  // Two secrets on the same roles would fight: each issue takes the role the other holds longest.
  issuerOwns: ({ role, strategy }) => loginRoles(role, strategy),
  // GRANT of a role to itself (circular) or to its sibling before that exists fails: no rotation could issue.
  issuerProblem: ({ role, strategy, memberOf }) => {
    const own = memberOf.filter((group) => loginRoles(role, strategy).includes(group));
    return own.length ? `memberOf names ${own.join(', ')}, a login role of this secret: list the group roles holding its privileges` : undefined;
  },
  open: (config, ctx) => openPostgresRole(config, ctx),
});

/**
 * An instance: one managing pool, opened on first use. Its queries time out (`queryTimeoutMs`, for
 * tests; the default, 60 s, is longer than any statement the issuer sends: a few catalog rows, a
 * per-family advisory lock held for one issue or revoke): in a silent network partition (packets
 * swallowed, no FIN or RST) the kernel keeps a connection for its retransmission timeout (about
 * 15 min), and both slots of the pool would be held that long, failing every issue and revoke.
 */
export function openPostgresRole(config: PostgresRoleConfig, ctx: ProviderContext, { queryTimeoutMs }: Pick<PoolTimeouts, 'queryTimeoutMs'> = {}): ProviderInstance<never, PostgresRoleIssuerBinding> {
  let pool: pg.Pool | undefined;
  // Resolved on first use, so a missing variable fails the run that needs it, not start-up.
  const managingUrl = () => ctx.credential(config.url).reveal();
  const session: PostgresRoleSession = {
    provider: ctx.name,
    log: ctx.log,
    async transaction(work) {
      if (!pool) {
        pool = new pg.Pool({ connectionString: managingUrl(), max: 2, idleTimeoutMillis: 10_000, ...poolTimeouts({ queryTimeoutMs, connectionWaitMs: 5000 }) });
        pool.on('error', () => undefined); // an idle client dropped by the server: the next checkout reconnects
        // A checked-out client ended by the server between queries must not crash the process (see providers/local).
        // A timed-out query's connection is destroyed, not given back to hang the next caller. A server that
        // refused a write as read-only (a standby, a primary demoted by a failover) is not asked again: its
        // connection is dropped when given back, so the retry goes through the front afresh.
        watchConnections(pool, () => undefined);
      }
      const managing = pool;
      return inTransaction(() => managing.connect(), work);
    },
    clientUrl() {
      const url = new URL(config.clientUrl ?? managingUrl());
      url.username = '';
      url.password = '';
      // The query can carry the managing credentials too, and there they win over the URL's user and password.
      for (const name of CREDENTIAL_PARAMS) url.searchParams.delete(name);
      return url;
    },
  };
  return {
    issuer: ({ params }) => new PostgresRoleIssuer(session, params),
    async close() {
      await pool?.end();
      pool = undefined;
    },
  };
}

/** The login roles a binding manages: `<role>_a` and `<role>_b` in turn, or the role itself. */
function loginRoles(role: string, strategy: 'alternating' | 'single'): string[] {
  return strategy === 'single' ? [role] : [`${role}_a`, `${role}_b`];
}
