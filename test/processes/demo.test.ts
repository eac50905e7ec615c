/**
 * The README's first quickstart command (`npm run demo`, which is `rekey dev --demo`) plays
 * rekey's main job end to end and exits 0 only if every promise held. Run twice on one
 * database, as a user who tries it again does: the second run rotates the keys the first made,
 * the signing key among them. For the JWKS max-age after that rotation the previous key signs,
 * once it has been current that long itself: the second run starts a max-age after the first
 * run promoted that key, as any run does a minute after the last (a 15 s max-age here instead of 60 s).
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isolate, type Isolated } from '../support/isolation.js';
import { runRekey } from '../support/processes.js';

const MAX_AGE_MS = 15_000;
/** The demo's signing key (src/cli/demo-tokens.ts). */
const SIGNING_KEY = 'demo-api-signing';
let env: Isolated;

beforeAll(async () => {
  env = await isolate('demo');
});
afterAll(() => env?.cleanup());

/** When the first run promoted the signing key it made, by PostgreSQL's clock, and PostgreSQL's clock now. */
async function signingKeyPromoted(): Promise<{ promotedAt: number; now: number }> {
  const client = new pg.Client({ connectionString: env.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ promoted_at: Date | null; now: Date }>(
      'SELECT max(v.promoted_at) AS promoted_at, clock_timestamp() AS now FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = $1',
      [SIGNING_KEY],
    );
    const [row] = rows;
    if (!row?.promoted_at) throw new Error(`the first run promoted no ${SIGNING_KEY} version`);
    return { promotedAt: row.promoted_at.getTime(), now: row.now.getTime() };
  } finally {
    await client.end();
  }
}

it('passes on a fresh database, and again once its signing key is old enough to sign after a rotation', async () => {
  const childEnv = { ...process.env, DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REKEY_QUEUE_PREFIX: env.prefix, REKEY_JWKS_MAX_AGE: `${MAX_AGE_MS / 1000}s` };
  for (const run of ['first', 'second']) {
    if (run === 'second') {
      // The first run's key comes of age: a max-age after its promotion (early in the first run), not after that run's end.
      const { promotedAt, now } = await signingKeyPromoted();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, promotedAt + MAX_AGE_MS - now)));
    }
    const result = await runRekey(['dev', '--demo'], childEnv);
    const failed = result.stdout.split('\n').filter((line) => /\bFAIL\b/.test(line));
    expect({ run, code: result.code, failed }, `${result.stdout}\n${result.stderr}`).toEqual({ run, code: 0, failed: [] });
  }
}, 300_000);
