/**
 * CPU milliseconds used so far by each PostgreSQL backend of one database (/proc, Linux; none
 * elsewhere): user and system time of each process pg_stat_activity lists for it, by pid. A
 * backend that exits takes its time with it and a new one brings none: {@link cpuSpent} counts
 * the backends present at both readings (the hand-out journal keeps its connection). The clock
 * tick is 10 ms per process: read it over seconds, not milliseconds.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import pg from 'pg';

let ticksPerSecond: number | undefined;

export async function postgresCpuMs(databaseUrl: string): Promise<Map<number, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  // Not this reading's own backend: it exits, and the next reading's would not be the same one.
  const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()').finally(() => client.end());
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const ms = new Map<number, number>();
  for (const { pid } of rows) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    // comm is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ms.set(pid, ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1000);
  }
  return ms;
}

/** CPU ms spent between two readings of {@link postgresCpuMs}, by the backends in both. */
export function cpuSpent(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let ms = 0;
  for (const [pid, then] of before) {
    const now = after.get(pid);
    if (now !== undefined) ms += now - then;
  }
  return ms;
}
