/**
 * The audit anchor job's cost as the log grows (src/audit-anchor.ts). Every hand-out is an
 * audit row and nothing deletes rows (docs/delivery.md: 10,000 clients on 5-minute tokens add
 * ~3.8 M rows a day, ~160,000 an hour), so a job that walks the whole log each run costs more
 * every day. Fills a log of --rows events of the hand-out shape over --chains chains (through
 * AuditLog.appendAll, the real append), then measures, in one run:
 * - full walk: verifyAudit over the whole log (what `rekey audit verify` and the daily run do);
 * - since walk: verifySince after --since more rows (what the other runs do);
 * - the chains' heads for an anchor: headsAt (one index probe per chain) against the plain
 *   DISTINCT ON over the table that takeAnchor used before (the baseline).
 *   npm run bench -- audit-anchor [--rows 1000000] [--since 160000] [--chains 1000]
 */
import { loadavg } from 'node:os';
import { SecretValue } from '../src/core/secret-value.js';
import { AuditLog, type AuditInput } from '../src/db/audit.js';
import { headsAt, takeAnchor, verifyAudit, verifySince } from '../src/db/audit-verify.js';
import { createDb, type Db } from '../src/db/client.js';
import { option } from './support/cli.js';
import { benchEnvironment } from './support/environment.js';

const PER_TRANSACTION = 5000;

export async function main(args: string[] = process.argv.slice(2)): Promise<unknown> {
  const rows = Number(option(args, '--rows') ?? 1_000_000);
  const since = Number(option(args, '--since') ?? 160_000);
  const chains = Number(option(args, '--chains') ?? 1000);
  const loadAtStart = loadavg()[0]!;
  const env = await benchEnvironment('audit');
  const db = createDb(env.databaseUrl, 4);
  const log = new AuditLog(SecretValue.of(env.env.REKEY_AUDIT_KEY!));
  try {
    let started = performance.now();
    await fill(db, log, 0, rows, chains);
    const fillSeconds = (performance.now() - started) / 1000;
    console.log(`  filled ${rows.toLocaleString('en')} rows over ${chains} chains in ${fillSeconds.toFixed(1)} s`);
    await db.$executeRawUnsafe('VACUUM ANALYZE audit_events');

    started = performance.now();
    const full = await verifyAudit(db, log);
    const fullSeconds = (performance.now() - started) / 1000;
    if (!full.ok) throw new Error(`the filled log does not verify: ${full.problem}`);

    const headsMs = await timed(() => headsAt(db, BigInt(rows)));
    const distinctMs = await timed(() => db.$queryRaw`SELECT DISTINCT ON (chain) chain, hash FROM audit_events WHERE seq <= ${BigInt(rows)} ORDER BY chain, seq DESC`);
    const anchorMs = await timed(() => takeAnchor(db, log, 'bench'));
    const { anchor } = await takeAnchor(db, log, 'bench');

    await fill(db, log, rows, since, chains);
    started = performance.now();
    const after = await verifySince(db, log, anchor);
    const sinceSeconds = (performance.now() - started) / 1000;
    if (!after.ok) throw new Error(`the rows since the anchor do not verify: ${after.problem}`);

    const figures = {
      rows,
      chains,
      fullWalk: { seconds: round(fullSeconds), rowsPerSecond: Math.round(rows / fullSeconds) },
      sinceWalk: { rows: after.events, seconds: round(sinceSeconds), rowsPerSecond: Math.round(after.events / sinceSeconds) },
      heads: { headsAtMs: round(headsMs), distinctOnMs: round(distinctMs), takeAnchorMs: round(anchorMs) },
      load: { start: round(loadAtStart), end: round(loadavg()[0]!) },
    };
    console.log(`  full walk        ${figures.fullWalk.seconds} s (${figures.fullWalk.rowsPerSecond.toLocaleString('en')} rows/s)`);
    console.log(`  since walk       ${figures.sinceWalk.rows.toLocaleString('en')} rows after the anchor: ${figures.sinceWalk.seconds} s`);
    console.log(`  chains' heads    headsAt ${figures.heads.headsAtMs} ms  (baseline DISTINCT ON ${figures.heads.distinctOnMs} ms);  takeAnchor ${figures.heads.takeAnchorMs} ms`);
    console.log(JSON.stringify(figures));
    return figures;
  } finally {
    await db.$disconnect();
    await env.cleanup();
  }
}

/**
 * Appends `count` hand-out events, numbered from `from`, over `chains` secrets in runs of 1,000
 * (a transaction touching every chain would take each chain's lock in turn: a round trip each).
 */
async function fill(db: Db, log: AuditLog, from: number, count: number, chains: number): Promise<void> {
  for (let done = 0; done < count; done += PER_TRANSACTION) {
    const inputs: AuditInput[] = Array.from({ length: Math.min(PER_TRANSACTION, count - done) }, (_, i) => {
      const n = from + done + i;
      return {
        actor: 'subject:app:com.example.ios',
        action: 'delivery.token',
        secret: `api-signing-${Math.floor(n / 1000) % chains}`,
        versionId: '8f0e2c1a-4a7b-4a55-9d3c-0b1f0d6b2a11',
        data: { grant: 'mobile', authenticator: 'app', subject: 'app:com.example.ios', version: 3, jti: `jti-${n}` },
      };
    });
    await db.$transaction((tx) => log.appendAll(tx, inputs), { timeout: 120_000 });
    if ((done / PER_TRANSACTION) % 40 === 39) console.log(`  … ${(from + done + inputs.length).toLocaleString('en')} rows`);
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

const round = (n: number) => Math.round(n * 10) / 10;
