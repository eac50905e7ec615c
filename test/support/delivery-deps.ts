/**
 * Fake dependencies of the core delivery flows (src/core/value-delivery.ts, token-exchange.ts) for
 * their unit tests. A file of its own, not delivery.ts: that one loads the HTTP routes, and through
 * them the database client, which a unit test of core has no use for.
 */
import { silentLogger } from '../../src/core/logger.js';
import type { ResolvedSecret } from '../../src/core/resolved.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { ValueDeliveryDeps } from '../../src/core/value-delivery.js';
import { versionRecord } from './versions.js';

/**
 * Deps where every authenticator accepts the subject `app:one`, the subject is always admitted,
 * every secret's current version is v2 (value `rk_value`) and signs alone, every JWT signed is
 * `header.payload.signature`, and every hand-out check passes; `overrides` replace any of it.
 * `signedWith` lists the secret of each signature, in order.
 */
export function fakeDeliveryDeps(overrides: Partial<ValueDeliveryDeps> = {}): { deps: ValueDeliveryDeps; signedWith: string[] } {
  const signedWith: string[] = [];
  const createdAt = new Date();
  const current: ValueDeliveryDeps['current'] = (secret) => Promise.resolve({ version: versionRecord(2, 'current', createdAt, { secret }), value: SecretValue.of('rk_value') });
  const deps: ValueDeliveryDeps = {
    repo: {} as ValueDeliveryDeps['repo'],
    providers: {
      resolve: (secret) => Promise.resolve({ issuer: { signJwt: () => (signedWith.push(secret), Promise.resolve('header.payload.signature')) }, policy: { consumer: 'rekey' } } as unknown as ResolvedSecret),
      policy: () => Promise.reject(new Error('not used')),
    },
    authenticator: () => Promise.resolve({ authenticate: () => Promise.resolve({ id: 'app:one', claims: {} }) }),
    admit: () => true,
    within: () => true,
    current,
    signingKeys: (secret, call) => current(secret, call).then((held) => held && [held]),
    publishLeadMs: 0,
    handOut: () => Promise.resolve(true),
    log: silentLogger,
    nextRotation: () => Promise.resolve(undefined),
    ...overrides,
  };
  return { deps, signedWith };
}
