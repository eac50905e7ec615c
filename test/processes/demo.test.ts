/**
 * The README's first quickstart command (`npm run demo`, which is `rekey dev --demo`) plays
 * rekey's main job end to end and exits 0 only if every promise held. Run twice on one
 * database, as a user who tries it again does: the second run rotates the keys the first made,
 * the signing key among them. For the JWKS max-age after that rotation the previous key signs,
 * once it has been current that long itself: the second run starts a max-age after the first
 * ended, as any run does a minute after the last (a 15 s max-age here instead of 60 s).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isolate, type Isolated } from '../support/isolation.js';
import { runRekey } from '../support/processes.js';

const MAX_AGE_MS = 15_000;
let env: Isolated;

beforeAll(async () => {
  env = await isolate('demo');
});
afterAll(() => env?.cleanup());

it('passes on a fresh database, and again once its signing key is old enough to sign after a rotation', async () => {
  const childEnv = { ...process.env, DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REKEY_QUEUE_PREFIX: env.prefix, REKEY_JWKS_MAX_AGE: `${MAX_AGE_MS / 1000}s` };
  for (const run of ['first', 'second']) {
    if (run === 'second') await new Promise((resolve) => setTimeout(resolve, MAX_AGE_MS)); // the first run's key comes of age
    const result = await runRekey(['dev', '--demo'], childEnv);
    const failed = result.stdout.split('\n').filter((line) => /\bFAIL\b/.test(line));
    expect({ run, code: result.code, failed }, `${result.stdout}\n${result.stderr}`).toEqual({ run, code: 0, failed: [] });
  }
}, 300_000);
