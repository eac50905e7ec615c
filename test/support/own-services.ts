/**
 * A PostgreSQL and a Redis of one's own, for the chaos soak and the outage tests: throwaway
 * servers on free loopback ports in a temp directory, which their owner may kill and
 * restart at will. The machine's shared servers (5432, 6379) are never touched: other test
 * files run against them at the same time.
 *
 * PostgreSQL is a fresh cluster from the installed binaries (initdb + postgres, run as the
 * `postgres` system user when we are root, as initdb and postgres refuse root), trust auth
 * on 127.0.0.1 only, fsync off (a killed postmaster loses nothing the OS page cache holds).
 * Commits stay synchronous: with `synchronous_commit=off` a crash loses transactions already
 * acknowledged, which no production database does to rekey (the soak once "found" a leak
 * report forgotten that way).
 * Redis keeps nothing on disk (`--save '' --appendonly no`): a restart loses every queue,
 * job and scheduler, which is the point.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { freePort, killOnExit, sleep } from './gateways/process.js';

export interface Owner {
  uid: number;
  gid: number;
}

/** A server process we can stop hard and start again on the same port. */
export abstract class Restartable {
  protected child: ChildProcess | undefined;
  protected output = '';

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  protected launch(command: string, args: string[], owner?: Owner): void {
    const child = spawn(command, args, { ...(owner ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-8000));
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    this.child = child;
    killOnExit(child);
  }

  /** Sends `signal` and waits for the process to exit (SIGKILL after 10 s). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** A throwaway cluster; `create(dir)` runs initdb in `dir` and creates the database `rekey`. */
export class OwnPostgres extends Restartable {
  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
    private readonly owner: Owner | undefined,
  ) {
    super();
  }

  /** The rekey database's URL (created by {@link start}). */
  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/rekey`;
  }

  get adminUrl(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async create(dir: string): Promise<OwnPostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)');
    const owner = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
    if (owner) chownSync(dir, owner.uid, owner.gid);
    const init = spawnSync(join(bin, 'initdb'), ['-D', join(dir, 'pgdata'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync'], {
      ...(owner ?? {}),
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error?.message}`);
    const server = new OwnPostgres(bin, dir, await freePort(), owner);
    await server.start();
    const admin = new pg.Client({ connectionString: server.adminUrl });
    await admin.connect();
    await admin.query('CREATE DATABASE rekey');
    await admin.end();
    return server;
  }

  /**
   * A streaming standby of `primary` in `dir` (`pg_basebackup -R`: it follows the primary
   * and answers read-only queries), started on a port of its own.
   */
  static async standbyOf(primary: OwnPostgres, dir: string): Promise<OwnPostgres> {
    if (primary.owner) chownSync(dir, primary.owner.uid, primary.owner.gid);
    const args = ['-D', join(dir, 'pgdata'), '-R', '-X', 'stream', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '--no-sync', '--checkpoint=fast'];
    const backup = spawnSync(join(primary.bin, 'pg_basebackup'), args, { ...(primary.owner ?? {}), encoding: 'utf8', timeout: 120_000 });
    if (backup.status !== 0) throw new Error(`pg_basebackup failed: ${backup.stderr || backup.error?.message}`);
    const standby = new OwnPostgres(primary.bin, dir, await freePort(), primary.owner);
    await standby.start();
    return standby;
  }

  /** `pg_ctl promote`: a standby leaves recovery and accepts writes (waits until it does). */
  promote(): void {
    const result = spawnSync(join(this.bin, 'pg_ctl'), ['promote', '-w', '-D', join(this.dir, 'pgdata')], { ...(this.owner ?? {}), encoding: 'utf8', timeout: 120_000 });
    if (result.status !== 0) throw new Error(`pg_ctl promote failed: ${result.stderr || result.error?.message}`);
  }

  /** Starts the postmaster on its port and waits until it accepts queries. */
  async start(): Promise<void> {
    this.launch(
      join(this.bin, 'postgres'),
      ['-D', join(this.dir, 'pgdata'), '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'],
      this.owner,
    );
    for (let i = 0; i < 300; i++) {
      if (!this.running) throw new Error(`postgres exited:\n${this.output}`);
      const client = new pg.Client({ connectionString: this.adminUrl });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return;
      } catch {
        await sleep(50);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    throw new Error(`postgres did not accept connections:\n${this.output}`);
  }
}

/** A redis-server on a loopback port, run with `args`; `start()` returns once it answers PING. */
export class RedisServer extends Restartable {
  constructor(
    readonly port: number,
    private readonly args: string[],
  ) {
    super();
  }

  /** A redis-server that keeps nothing on disk. */
  static async create(): Promise<RedisServer> {
    const port = await freePort();
    const server = new RedisServer(port, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--maxclients', '2000']);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.launch('redis-server', this.args);
    for (let i = 0; i < 400; i++) {
      if (!this.running) throw new Error(`redis-server on ${this.port} exited:\n${this.output}`);
      const client = this.client();
      try {
        await client.connect();
        await client.ping();
        return;
      } catch {
        await sleep(25);
      } finally {
        client.disconnect();
      }
    }
    throw new Error(`redis-server on ${this.port} did not answer:\n${this.output}`);
  }

  /** One command on a short-lived connection of its own. */
  async command(...args: string[]): Promise<unknown> {
    const client = this.client();
    try {
      await client.connect();
      return await client.call(args[0]!, ...args.slice(1));
    } finally {
      client.disconnect();
    }
  }

  private client(): Redis {
    const client = new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    client.on('error', () => undefined);
    return client;
  }
}

/** The newest installed PostgreSQL server's bin directory (Debian layout), or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')));
}

/** uid and gid of a system user (initdb and postgres refuse to run as root). */
export function systemUser(name: string): Owner {
  const uid = Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !uid) throw new Error(`system user ${name} not found (it comes with the postgresql package)`);
  return { uid, gid };
}
