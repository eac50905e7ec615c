#!/usr/bin/env node
// Makes sure PostgreSQL and Redis answer at DATABASE_URL / REDIS_URL (the machine's
// own by default). When one is installed but stopped, starts it; when it is missing,
// says what to install. Used by `npm test`; `rekey dev` has its own embedded fallbacks.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';

const databaseUrl = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
const redisUrl = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

const answers = (host, port) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port: Number(port) }, () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
  });
const has = (command) => spawnSync('sh', ['-c', `command -v ${command} || test -x /usr/sbin/${command}`]).status === 0;
const waitFor = async (host, port, what) => {
  for (let i = 0; i < 60; i++) {
    if (await answers(host, port)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not start listening on ${host}:${port}`);
};

export async function ensureServices() {
  const problems = [];
  if (!(await answers(databaseUrl.hostname, databaseUrl.port || 5432))) {
    const clusters = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
    if (has('pg_ctlcluster') && clusters.length) {
      console.error(`services: starting PostgreSQL ${clusters[0]}`);
      execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', clusters[0], 'main', 'start'], { stdio: 'inherit' });
      await waitFor(databaseUrl.hostname, databaseUrl.port || 5432, 'PostgreSQL');
    } else problems.push(`PostgreSQL is not reachable at ${databaseUrl.host} and not installed (apt-get install postgresql, or set DATABASE_URL)`);
  }
  if (!(await answers(redisUrl.hostname, redisUrl.port || 6379))) {
    if (has('redis-server')) {
      console.error('services: starting redis-server');
      execFileSync('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', String(redisUrl.port || 6379), '--save', '', '--appendonly', 'no'], { stdio: 'inherit' });
      await waitFor(redisUrl.hostname, redisUrl.port || 6379, 'Redis');
    } else problems.push(`Redis is not reachable at ${redisUrl.host} and not installed (apt-get install redis-server, or set REDIS_URL)`);
  }
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const problems = await ensureServices();
  for (const p of problems) console.error(`services: ${p}`);
  process.exit(problems.length ? 1 : 0);
}
