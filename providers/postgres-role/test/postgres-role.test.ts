// postgres-role against a throwaway scram-only cluster (so a login really checks the password)
// managed by a CREATEROLE-only user, as the README recommends; and against the machine's
// shared server (trust auth) to show verify refuses to vouch for a password it cannot check.
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import { inTransaction } from '../../../src/core/kit/sql-pool.js';
import type { IssuedRef, JsonObject } from '../../../src/core/ports.js';
import type { SecretValue } from '../../../src/core/secret-value.js';
import { providers } from '../../../src/registry.js';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, fingerprint, issued, newVersion } from '../../../test/conformance/refs.js';
import { until } from '../../../test/support/poll.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { DATABASE_URL } from '../../../test/support/services.js';
import { TcpFront } from '../../../test/support/tcp-front.js';
import postgresRole, { openPostgresRole } from '../index.js';
import { PostgresRoleIssuer, type PostgresRoleSession } from '../postgres-role.issuer.js';
import { startScramCluster, type ScramCluster } from './scram-cluster.js';

const ENV = `PROVIDERTEST_PG_ROLE_URL_${process.pid}`;
const SHARED_ENV = `${ENV}_SHARED`;
let cluster: ScramCluster;
let managerUrl: string;

async function sql<R extends pg.QueryResultRow = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query<R>(text, params);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  cluster = await startScramCluster();
  const password = randomBytes(18).toString('base64url');
  await sql(cluster.superuserUrl, `CREATE ROLE rekey_manager LOGIN CREATEROLE PASSWORD '${password}'`);
  await sql(cluster.superuserUrl, 'GRANT pg_signal_backend TO rekey_manager');
  await sql(cluster.superuserUrl, 'CREATE ROLE app_rw NOLOGIN');
  managerUrl = `postgresql://rekey_manager:${password}@${cluster.host}:${cluster.port}/postgres`;
  process.env[ENV] = managerUrl;
  process.env[SHARED_ENV] = DATABASE_URL;
});
afterAll(async () => {
  await cluster?.stop();
  delete process.env[ENV];
  delete process.env[SHARED_ENV];
});

function open(params: Record<string, unknown> = {}, env = ENV) {
  const role = `app_${randomUUID().replaceAll('-', '').slice(0, 10)}`;
  const instance = postgresRole.open(postgresRole.config.parse({ url: `\${env:${env}}` }), testProviderContext('pg'));
  const issuer = instance.issuer!({ secret: 'orders-db', params: postgresRole.bindings.issuer!.parse({ role, ...params }) });
  return { role, issuer, close: () => instance.close!() };
}

const ref = (v: { ref: ReturnType<typeof newVersion>['ref'] }, value: SecretValue, state: JsonObject): IssuedRef =>
  issued({ ...v.ref, fingerprint: fingerprint(value) }, state);
const verifyError = (promise: Promise<void>) => promise.then(() => undefined, (e: unknown) => e as { code: string });

issuerConformance(
  'postgres-role (alternating, scram cluster)',
  () => {
    const { issuer, close } = open();
    return Promise.resolve({ issuer, secret: 'orders-db', unknownState: { role: 'ghost_a', strategy: 'alternating' }, cleanup: close });
  },
  { revokeIsObservable: true },
);

describe('postgres-role alternating', () => {
  it('uses _a and _b in turn and revoke never touches a role re-issued since', async () => {
    const { role, issuer, close } = open({ memberOf: ['app_rw'] });
    try {
      const v1 = newVersion('orders-db');
      const i1 = await issuer.issue(v1.ref, call());
      expect(i1.state).toEqual({ role: `${role}_a`, strategy: 'alternating' });
      expect(JSON.parse(i1.value.reveal())).toEqual({ username: `${role}_a`, password: expect.any(String) as unknown });
      const v2 = newVersion('orders-db');
      const i2 = await issuer.issue(v2.ref, call());
      expect(i2.state.role).toBe(`${role}_b`);

      await issuer.revoke(ref(v1, i1.value, i1.state), call());
      const v3 = newVersion('orders-db');
      const i3 = await issuer.issue(v3.ref, call());
      expect(i3.state.role).toBe(`${role}_a`);
      // A late, repeated revoke of v1 must not kill v3, which now lives on the same role.
      await issuer.revoke(ref(v1, i1.value, i1.state), call());
      await issuer.verify(ref(v3, i3.value, i3.state), i3.value, call());
      await issuer.verify(ref(v2, i2.value, i2.state), i2.value, call());

      const members = await sql<{ rolname: string }>(
        cluster.superuserUrl,
        `SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
          WHERE g.rolname = 'app_rw' AND r.rolname LIKE $1 ORDER BY 1`,
        [`${role}_%`],
      );
      expect(members.rows.map((r) => r.rolname)).toEqual([`${role}_a`, `${role}_b`]);
      // The server holds a SCRAM verifier rekey computed; the plaintext never reached it.
      const stored = await sql<{ rolpassword: string }>(cluster.superuserUrl, 'SELECT rolpassword FROM pg_authid WHERE rolname = $1', [`${role}_a`]);
      expect(String(stored.rows[0]?.rolpassword)).toMatch(/^SCRAM-SHA-256\$4096:/);
    } finally {
      await close();
    }
  });

  it('replaces its own password when issue is retried for the same version', async () => {
    const { role, issuer, close } = open();
    try {
      const v1 = newVersion('orders-db');
      const first = await issuer.issue(v1.ref, call());
      const again = await issuer.issue(v1.ref, call());
      expect(again.state.role).toBe(`${role}_a`);
      await issuer.verify(ref(v1, again.value, again.state), again.value, call());
      expect(await verifyError(issuer.verify(ref(v1, first.value, first.state), first.value, call()))).toMatchObject({
        code: 'REKEY_ERR_VERIFY_FAILED',
      });
    } finally {
      await close();
    }
  });

  it('an issue whose answer was lost is revoked by version id, so the next issue leaves the current role alone', async () => {
    const { role, issuer, close } = open();
    try {
      const current = newVersion('orders-db');
      const c = await issuer.issue(current.ref, call());
      // The next rotation's issue commits on _b, but its answer never reaches rekey (a timeout on
      // the last attempt): the version has no state, and its rollback revokes it with none.
      const lost = newVersion('orders-db');
      expect((await issuer.issue(lost.ref, call())).state.role).toBe(`${role}_b`);
      await issuer.revoke(issued(lost.ref, {}), call());
      await issuer.revoke(issued(lost.ref, {}), call());
      const next = newVersion('orders-db');
      const n = await issuer.issue(next.ref, call());
      // The current version, which clients use, still logs in: the next one took the lost one's role.
      await issuer.verify(ref(current, c.value, c.state), c.value, call());
      expect(n.state.role).toBe(`${role}_b`);
    } finally {
      await close();
    }
  });

  it('an issue abandoned by its timeout rolls back instead of committing a password nobody will record', async () => {
    const { role, issuer, close } = open({ strategy: 'single' });
    const locker = new pg.Client({ connectionString: managerUrl });
    await locker.connect();
    try {
      const v1 = newVersion('orders-db');
      const i1 = await issuer.issue(v1.ref, call());
      // Another worker holds the role family's lock: the next issue waits for it, past its timeout.
      await locker.query('BEGIN');
      await locker.query(`SELECT pg_advisory_xact_lock(hashtext('rekey:postgres-role:' || $1))`, [role]);
      const controller = new AbortController();
      const abandoned = issuer.issue(newVersion('orders-db').ref, { signal: controller.signal }).catch((e: unknown) => e);
      const waiting = async () =>
        (await locker.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).rowCount! > 0;
      await until(waiting, 10_000, 'the issue to wait for the lock');
      controller.abort();
      await locker.query('COMMIT');
      expect(await abandoned).toMatchObject({ code: 'REKEY_ERR_TIMEOUT' });
      // The password clients use is the one rekey recorded.
      await issuer.verify(ref(v1, i1.value, i1.state), i1.value, call());
    } finally {
      await locker.end();
      await close();
    }
  });

  it('a managing URL with its credentials in the query (?user=&password=) lends them neither to clients nor to verify', async () => {
    const manager = new URL(managerUrl);
    const env = `${ENV}_QUERY`;
    process.env[env] = `postgresql://${cluster.host}:${cluster.port}/postgres?user=${manager.username}&password=${manager.password}&application_name=rekey`;
    const { role, issuer, close } = open({ format: 'url' }, env);
    try {
      const v1 = newVersion('orders-db');
      const i1 = await issuer.issue(v1.ref, call());
      expect(i1.value.reveal()).not.toContain(manager.password);
      expect(new URL(i1.value.reveal()).searchParams.get('application_name')).toBe('rekey');
      await issuer.verify(ref(v1, i1.value, i1.state), i1.value, call());
      const app = new pg.Client({ connectionString: i1.value.reveal() });
      await app.connect();
      try {
        expect((await app.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u).toBe(`${role}_a`);
      } finally {
        await app.end();
      }
    } finally {
      await close();
      delete process.env[env];
    }
    expect(() => postgresRole.config.parse({ url: `\${env:${env}}`, clientUrl: 'postgresql://pooler:6432/postgres?password=x' })).toThrow(/credentials/);
  });

  it('gives clients a connection URL with format: url, and ends sessions on revoke when asked', async () => {
    const { issuer, close } = open({ format: 'url', terminateSessions: true });
    try {
      const v1 = newVersion('orders-db');
      const i1 = await issuer.issue(v1.ref, call());
      const app = new pg.Client({ connectionString: i1.value.reveal() });
      app.on('error', () => undefined);
      await app.connect();
      expect((await app.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u).toBe(i1.state.role);
      await issuer.revoke(ref(v1, i1.value, i1.state), call());
      await expect(app.query('SELECT 1')).rejects.toThrow();
      await app.end().catch(() => undefined);
    } finally {
      await close();
    }
  });

  it('ends sessions only once the unknown password is committed: a client reconnecting in between does not survive revoke', async () => {
    const { role, issuer, close } = open({ terminateSessions: true });
    // The same issuer over a session that lets the test act just before each COMMIT.
    const pool = new pg.Pool({ connectionString: managerUrl, max: 1 });
    let beforeCommit: (() => Promise<void>) | undefined;
    const session: PostgresRoleSession = {
      provider: 'pg',
      log: testProviderContext('pg').log,
      transaction: (work) =>
        inTransaction(
          () => pool.connect(),
          async (client) => {
            const result = await work(client);
            const hook = beforeCommit;
            beforeCommit = undefined;
            await hook?.();
            return result;
          },
        ),
      clientUrl: () => new URL(`postgresql://${cluster.host}:${cluster.port}/postgres`),
    };
    const hooked = new PostgresRoleIssuer(session, postgresRole.bindings.issuer!.parse({ role, terminateSessions: true }));
    let reconnected: pg.Client | undefined;
    try {
      const v1 = newVersion('orders-db');
      const i1 = await issuer.issue(v1.ref, call());
      const { username, password } = JSON.parse(i1.value.reveal()) as { username: string; password: string };
      // A pool whose session revoke ends reconnects at once, before the revoking transaction commits.
      beforeCommit = async () => {
        reconnected = new pg.Client({ host: cluster.host, port: cluster.port, database: 'postgres', user: username, password });
        reconnected.on('error', () => undefined);
        await reconnected.connect();
      };
      await hooked.revoke(ref(v1, i1.value, i1.state), call());
      expect(reconnected).toBeDefined();
      await expect(reconnected!.query('SELECT 1')).rejects.toThrow();
      expect(await verifyError(issuer.verify(ref(v1, i1.value, i1.state), i1.value, call()))).toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
    } finally {
      await reconnected?.end().catch(() => undefined);
      await pool.end();
      await close();
    }
  });

  it('refuses to create roles when create is false, and maps a missing privilege to DENIED', async () => {
    const { issuer, close } = open({ create: false });
    try {
      const error = await issuer.issue(newVersion('orders-db').ref, call()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'REKEY_ERR_NOT_FOUND', retryable: false });
    } finally {
      await close();
    }
    const password = randomBytes(18).toString('base64url');
    await sql(cluster.superuserUrl, `CREATE ROLE rekey_weak LOGIN PASSWORD '${password}'`);
    process.env[`${ENV}_WEAK`] = `postgresql://rekey_weak:${password}@${cluster.host}:${cluster.port}/postgres`;
    const weak = open({}, `${ENV}_WEAK`);
    try {
      const error = await weak.issuer.issue(newVersion('orders-db').ref, call()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'REKEY_ERR_DENIED', retryable: false });
      expect(String(error)).toContain('CREATEROLE');
    } finally {
      await weak.close();
      delete process.env[`${ENV}_WEAK`];
    }
  });
});

describe('postgres-role when the managed server fails over', () => {
  it('a server that refuses writes as read-only (a standby, a demoted primary) fails issue retryably, and that connection is not kept: once writes are taken again, issue works', async () => {
    // Sessions of the managing user opened from now on are read-only, as on a standby.
    await sql(cluster.superuserUrl, 'ALTER ROLE rekey_manager SET default_transaction_read_only = on');
    const { issuer, close } = open();
    try {
      try {
        const error = await issuer.issue(newVersion('orders-db').ref, call()).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'REKEY_ERR_UNAVAILABLE', retryable: true });
      } finally {
        await sql(cluster.superuserUrl, 'ALTER ROLE rekey_manager RESET default_transaction_read_only');
      }
      // The front leads to a writable primary again: the step's retry goes there, not to the read-only session.
      const v = newVersion('orders-db');
      await expect(issuer.issue(v.ref, call())).resolves.toMatchObject({ state: expect.anything() as unknown });
    } finally {
      await close();
    }
  });
});

describe('postgres-role in a silent network partition', () => {
  // Packets swallowed, no FIN or RST (test/support/tcp-front.ts's partition()): the kernel would keep
  // the managing connections for its retransmission timeout (about 15 min), and with them both slots of
  // the pool. A short query timeout here; the default is 60 s.
  const QUERY_TIMEOUT_MS = 1000;
  /** One query timeout, and room for a loaded machine. Before: never (each issue waited 5 s for a connection in vain). */
  const BOUND_MS = 20_000;

  it('its managing connections stuck in a silent partition fail, and issue works again once the partition heals', async () => {
    const front = await TcpFront.listen(cluster.port);
    const url = new URL(managerUrl);
    url.port = String(front.port);
    process.env[`${ENV}_FRONT`] = url.toString();
    const instance = openPostgresRole(postgresRole.config.parse({ url: `\${env:${ENV}_FRONT}` }), testProviderContext('pg'), { queryTimeoutMs: QUERY_TIMEOUT_MS });
    const role = `app_${randomUUID().replaceAll('-', '').slice(0, 10)}`;
    const issuer = instance.issuer!({ secret: 'orders-db', params: postgresRole.bindings.issuer!.parse({ role }) });
    try {
      // Both slots of the pool (two) hold a connection.
      await Promise.all([issuer.issue(newVersion('orders-db').ref, call()), issuer.issue(newVersion('orders-db').ref, call())]);
      front.partition();
      const before = front.swallowedWrites;
      const stuck = Array.from({ length: 3 }, () => issuer.issue(newVersion('orders-db').ref, call(30_000)));
      for (const p of stuck) p.catch(() => undefined);
      // Both pooled connections have sent their BEGIN into the partition.
      await front.whenSwallowed(before + 2);
      front.heal();
      const started = performance.now();
      for (;;) {
        try {
          await issuer.issue(newVersion('orders-db').ref, call(30_000));
          break;
        } catch (error) {
          if (performance.now() - started > BOUND_MS) throw error;
        }
      }
      expect(performance.now() - started).toBeLessThan(BOUND_MS);
    } finally {
      front.heal();
      await Promise.race([instance.close!(), new Promise((resolve) => setTimeout(resolve, 1000))]);
      await front.close();
      delete process.env[`${ENV}_FRONT`];
    }
  }, 90_000);
});

describe('postgres-role single', () => {
  it('changes one password in place: the old one dies at issue, revoke of an old version is a no-op', async () => {
    const { role, issuer, close } = open({ strategy: 'single' });
    try {
      const v1 = newVersion('orders-db');
      const i1 = await issuer.issue(v1.ref, call());
      expect(i1.state).toEqual({ role, strategy: 'single' });
      await issuer.verify(ref(v1, i1.value, i1.state), i1.value, call());
      const v2 = newVersion('orders-db');
      const i2 = await issuer.issue(v2.ref, call());
      expect(await verifyError(issuer.verify(ref(v1, i1.value, i1.state), i1.value, call()))).toMatchObject({
        code: 'REKEY_ERR_VERIFY_FAILED',
      });
      await issuer.revoke(ref(v1, i1.value, i1.state), call());
      await issuer.verify(ref(v2, i2.value, i2.state), i2.value, call());
      await issuer.revoke(ref(v2, i2.value, i2.state), call());
      expect(await verifyError(issuer.verify(ref(v2, i2.value, i2.state), i2.value, call()))).toMatchObject({
        code: 'REKEY_ERR_VERIFY_FAILED',
      });
    } finally {
      await close();
    }
  });

  it('never rotates its own managing user', async () => {
    const instance = postgresRole.open(postgresRole.config.parse({ url: `\${env:${ENV}}` }), testProviderContext('pg'));
    const issuer = instance.issuer!({
      secret: 's',
      params: postgresRole.bindings.issuer!.parse({ role: 'rekey_manager', strategy: 'single' }),
    });
    const error = await issuer.issue(newVersion('s').ref, call()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'REKEY_ERR_CONFIG' });
    await instance.close!();
    expect(() => postgresRole.bindings.issuer!.parse({ role: 'postgres' })).toThrow();
    expect(() => postgresRole.bindings.issuer!.parse({ role: 'pg_monitor' })).toThrow();
  });
});

describe('postgres-role on the shared trust-auth server', () => {
  const created: string[] = [];
  afterAll(async () => {
    for (const role of created) await sql(DATABASE_URL, `DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
  });

  it('refuses to vouch for a password the server does not check, unless allowTrustAuth', async () => {
    for (const allowTrustAuth of [false, true]) {
      const { role, issuer, close } = open({ allowTrustAuth }, SHARED_ENV);
      created.push(`${role}_a`, `${role}_b`);
      try {
        const v1 = newVersion('orders-db');
        const i1 = await issuer.issue(v1.ref, call());
        const result = await verifyError(issuer.verify(ref(v1, i1.value, i1.state), i1.value, call()));
        if (allowTrustAuth) expect(result).toBeUndefined();
        else expect(result).toMatchObject({ code: 'REKEY_ERR_INVALID', retryable: false });
        await issuer.revoke(ref(v1, i1.value, i1.state), call());
        const marker = await sql<{ c: string }>(DATABASE_URL, `SELECT shobj_description(oid, 'pg_authid') AS c FROM pg_roles WHERE rolname = $1`, [
          `${role}_a`,
        ]);
        expect(String(marker.rows[0]?.c)).toBe(`rekey:revoked:${v1.ref.versionId}:${String(marker.rows[0]?.c).split(':')[3]}`);
      } finally {
        await close();
      }
    }
  });
});

describe('postgres-role in rekey.yaml', () => {
  const yaml = (secrets: string) => `
env: { allow: [ORDERS_DB_URL, BILLING_DB_URL] }
providers:
  vault: { type: local }
  orders-db: { type: postgres-role, url: "\${env:ORDERS_DB_URL}" }
  billing-db: { type: postgres-role, url: "\${env:BILLING_DB_URL}" }
secrets:
${secrets}`;
  const problems = (secrets: string) =>
    parseConfig(yaml(secrets), 'rekey.yaml', providers).then(
      () => '',
      (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    );

  it('refuses two secrets, or two clients of one, whose issuers would change the same login roles', async () => {
    // Both would alternate over orders_a/orders_b: once both are live, one's rotation re-issues the other's current role.
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: orders-db, role: orders } }
  b: { store: { provider: vault }, issuer: { provider: orders-db, role: orders, format: url } }
`)).toMatch(/secrets\.b\.issuer: it would change orders_a on orders-db, as the issuer of a does/);
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: orders-db, role: orders } }
  b: { store: { provider: vault }, issuer: { provider: orders-db, role: orders_b, strategy: single } }
`)).toMatch(/secrets\.b\.issuer: .*orders_b/);
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: orders-db, role: orders }, clients: [web, jobs] }
`)).toMatch(/secrets\.a\.issuer: .*orders_a/);
  });

  it('refuses memberOf naming one of the secret\'s own login roles: the server refuses that GRANT, so no rotation could issue', async () => {
    const role = `app_${randomUUID().replaceAll('-', '').slice(0, 10)}`;
    const { issuer, close } = open({ role, memberOf: [`${role}_a`] });
    try {
      const error = await issuer.issue(newVersion('orders-db').ref, call()).then(() => undefined, (e: unknown) => e as { code: string });
      expect(error?.code).toBe('REKEY_ERR_INVALID');
    } finally {
      await close();
    }
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: orders-db, role: orders, memberOf: [orders_rw, orders_a] } }
`)).toMatch(/secrets\.a\.issuer: .*memberOf.*orders_a/);
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: orders-db, role: orders, strategy: single, memberOf: [orders] } }
`)).toMatch(/secrets\.a\.issuer: .*memberOf/);
  });

  it('accepts distinct roles, and one role name on two servers', async () => {
    expect(await problems(`
  a: { store: { provider: vault }, issuer: { provider: orders-db, role: orders } }
  b: { store: { provider: vault }, issuer: { provider: orders-db, role: orders_a } }
  c: { store: { provider: vault }, issuer: { provider: billing-db, role: orders } }
`)).toBe('');
  });
});
