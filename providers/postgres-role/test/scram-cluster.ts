/**
 * A throwaway PostgreSQL cluster for tests that must prove a password is really checked:
 * the machine's shared server trusts local connections, so a login there proves nothing.
 * Built with the installed server binaries (Debian's postgresql package) in a temp dir,
 * TCP on 127.0.0.1 only with scram-sha-256 for every role, its socket inside the data dir.
 * PostgreSQL cannot report a port it picked itself, so we take a free one from the kernel
 * (bind 127.0.0.1:0, close) and retry if another process grabs it first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, killOnExit } from '../../../test/support/gateways/process.js';
import { postgresBinDir, systemUser } from '../../../test/support/own-services.js';

export interface ScramCluster {
  /** Superuser URL (password-authenticated over TCP). */
  superuserUrl: string;
  host: string;
  port: number;
  stop(): Promise<void>;
}


export async function startScramCluster(): Promise<ScramCluster> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)');
  const dir = mkdtempSync(join(tmpdir(), 'rekey-pg-'));
  // initdb and postgres refuse to run as root: run them as the postgres system user then.
  const owner = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pwfile');
  const data = join(dir, 'data');
  writeFileSync(pwfile, password, { mode: 0o600 });
  if (owner) {
    chownSync(dir, owner.uid, owner.gid);
    chownSync(pwfile, owner.uid, owner.gid);
  }
  const init = spawnSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'rekey_super', `--pwfile=${pwfile}`, '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-sync'],
    { ...(owner ?? {}), encoding: 'utf8', timeout: 60_000 },
  );
  rmSync(pwfile, { force: true });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.error?.message}`);
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      join(bin, 'postgres'),
      ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=20'],
      { ...(owner ?? {}), stdio: 'ignore' },
    );
    killOnExit(child);
    const superuserUrl = `postgresql://rekey_super:${password}@127.0.0.1:${port}/postgres`;
    if (await ready(superuserUrl, child)) {
      return { superuserUrl, host: '127.0.0.1', port, stop: () => stop(child, dir) };
    }
    await stop(child, attempt >= 3 ? dir : undefined);
    if (attempt >= 3) throw new Error('the throwaway PostgreSQL did not start');
  }
}

async function ready(url: string, child: ChildProcess): Promise<boolean> {
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return false;
}

async function stop(child: ChildProcess, dir: string | undefined): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGINT'); // "fast shutdown": ends sessions, no checkpoint wait beyond what is needed
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}
