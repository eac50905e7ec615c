// Where the integration tests find Redis and PostgreSQL (the machine's own by default).
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** REKEY_AUDIT_KEY of the tests; global setup also puts it in process.env, for the CLI run in process and child processes. */
export const TEST_AUDIT_KEY = 'c'.repeat(64);
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/** The URL of another database on the same server. */
export function databaseUrl(name: string, base = DATABASE_URL): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}
