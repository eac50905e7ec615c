/**
 * CPU milliseconds used so far by the PostgreSQL backends of one database (/proc, Linux; 0
 * elsewhere): user and system time of each `postgres` process pg_stat_activity lists for it.
 * A backend that exits takes its time with it, so read it around a phase whose connections
 * stay open (the hand-out journal keeps its own). The clock tick is 10 ms per process: read
 * it over seconds, not milliseconds.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import pg from 'pg';

let ticksPerSecond: number | undefined;

export async function postgresCpuMs(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  // Not this reading's own backend: it exits, and the next reading's would not be the same one.
  const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()').finally(() => client.end());
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  let ms = 0;
  for (const { pid } of rows) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    // comm is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ms += ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1000;
  }
  return ms;
}
