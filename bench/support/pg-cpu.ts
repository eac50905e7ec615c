/**
 * CPU milliseconds used so far by each PostgreSQL backend of one database (/proc, Linux; none
 * elsewhere): user and system time of each process pg_stat_activity lists for it, by pid. A
 * backend that exits takes its time with it and a new one brings none: {@link cpuSpent} counts
 * the backends present at both readings (the hand-out journal keeps its connection).
 */
import pg from 'pg';
import { processCpu } from './proc-cpu.js';

export async function postgresCpuMs(databaseUrl: string): Promise<Map<number, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  // Not this reading's own backend: it exits, and the next reading's would not be the same one.
  const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()').finally(() => client.end());
  const ms = new Map<number, number>();
  for (const { pid } of rows) {
    const cpu = processCpu(pid);
    if (cpu) ms.set(pid, cpu.ms);
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
