// A hand-out whose check fails (a version revoked or replaced between the cached read and the
// recording) runs once more from PostgreSQL (retryingStale, src/core/delivery.ts). That retry
// is the same request: it authenticates again but charges the subject's rate limit once. With
// an allowance of one request, both flows must answer, not refuse the retry as rate limited.
import { describe, expect, it } from 'vitest';
import { DeliveryError, type DeliverySpec, type HandOut } from '../../src/core/delivery.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { exchangeToken } from '../../src/core/token-exchange.js';
import { deliverValue } from '../../src/core/value-delivery.js';
import { RateLimiter } from '../../src/http/rate-limit.js';
import { fakeDeliveryDeps } from '../support/delivery-deps.js';

const delivery: DeliverySpec = {
  issuer: 'https://rekey.test',
  grants: {
    mobile: { name: 'mobile', authenticator: 'app', subjects: ['app:*'], token: { signingKey: 'api-key', audience: 'api', ttlMs: 300_000, claims: { copy: [], fixed: {} } } },
    payments: { name: 'payments', authenticator: 'app', subjects: ['app:*'], value: { secret: 'api-key', ttlMs: 300_000 } },
  },
};

/** Deps whose first hand-out check fails, as after a revocation the cache has not heard of; the rate limit is the real one, one request per subject. */
function staleOnce() {
  const limiter = new RateLimiter({ max: 1, windowMs: 3_600_000 });
  const checks: HandOut[] = [];
  let authentications = 0;
  const { deps } = fakeDeliveryDeps({
    authenticator: () =>
      Promise.resolve({
        authenticate: () => {
          authentications += 1;
          return Promise.resolve({ id: 'app:one', claims: {} });
        },
      }),
    admit: (key) => limiter.take(key),
    within: (key) => limiter.available(key),
    handOut: (entry) => {
      checks.push(entry);
      return Promise.resolve(checks.length > 1);
    },
  });
  return { deps, limiter, checks, authentications: () => authentications };
}

describe('a hand-out whose check fails', () => {
  it('is retried as the same request: value delivery charges the subject once', async () => {
    const { deps, limiter, checks, authentications } = staleOnce();
    const answer = await deliverValue(deps, delivery, SecretValue.of('credential'), 'api-key', undefined);
    expect(answer.status).toBe('fresh');
    expect(checks).toHaveLength(2);
    expect(authentications()).toBe(2);
    // The one request of the allowance is used: the next request is refused.
    expect(limiter.available('app:app:one')).toBe(false);
    await expect(deliverValue(deps, delivery, SecretValue.of('credential'), 'api-key', undefined)).rejects.toEqual(new DeliveryError('rate_limited', 'the subject is over its request limit'));
  });

  it('is retried as the same request: token exchange charges the subject once', async () => {
    const { deps, checks } = staleOnce();
    const minted = await exchangeToken(deps, delivery, SecretValue.of('credential'), 'api');
    expect(minted).toMatchObject({ token: 'header.payload.signature', grant: 'mobile', subject: 'app:one' });
    expect(checks).toHaveLength(2);
  });
});
