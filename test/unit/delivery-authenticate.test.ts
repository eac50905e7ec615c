// Steps 1 and 2 of every delivery request (src/core/delivery.ts authenticate), with fake
// authenticators: which authenticators a request is tried against, and which refusal it gets.
//
// - A token request is authenticated against every token grant's authenticator whatever its
//   audience, the audience's own first: an unauthenticated caller gets the same answer for an
//   audience no grant serves as for a served one, even when the authenticators differ per
//   audience and one of them is down (before: no_grant before authentication for the first,
//   the refusal of the served audience's authenticators alone for the second).
// - A credential no authenticator accepted while one could not verify is `unverifiable` (503, and
//   counted against its source by the routes: before, such 503s were counted nowhere, so garbage
//   sprayed during an issuer's outage cost its sender nothing); one an authenticator accepted but
//   whose remote check could not be made is `unavailable` (not counted: the credential is valid).
import { describe, expect, it } from 'vitest';
import type { DeliverySpec, GrantSpec } from '../../src/core/delivery.js';
import { ProviderError } from '../../src/core/errors.js';
import type { Subject } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { exchangeToken } from '../../src/core/token-exchange.js';
import { deliverValue } from '../../src/core/value-delivery.js';
import { fakeDeliveryDeps } from '../support/delivery-deps.js';

const token = (name: string, authenticator: string, audience: string): GrantSpec => ({
  name,
  authenticator,
  subjects: ['*'],
  token: { signingKey: 'api-key', audience, ttlMs: 300_000, claims: { copy: [], fixed: {} } },
});
const value = (name: string, authenticator: string, secret: string): GrantSpec => ({ name, authenticator, subjects: ['*'], value: { secret, ttlMs: 300_000 } });

/** ci (an OIDC issuer, say) first in the file, app second; each grant names one of them. */
const delivery: DeliverySpec = {
  issuer: 'https://rekey.test',
  grants: {
    ci: token('ci', 'ci', 'ci.example.com'),
    mobile: token('mobile', 'app', 'api.example.com'),
    'ci-values': value('ci-values', 'ci', 'ci-key'),
    'app-values': value('app-values', 'app', 'api-key'),
  },
};

type Behaviour = 'refuses' | 'down' | 'accepts' | 'confirm-down';

/** Fake deps: each authenticator behaves as told; `asked` records which were asked, in order. */
function depsWith(behaviour: Record<string, Behaviour>) {
  const asked: string[] = [];
  const { deps } = fakeDeliveryDeps({
    authenticator: (name) =>
      Promise.resolve({
        authenticate: (): Promise<Subject> => {
          asked.push(name);
          switch (behaviour[name]) {
            case 'accepts':
              return Promise.resolve({ id: `${name}:one`, claims: {} });
            case 'confirm-down':
              return Promise.resolve({ id: `${name}:one`, claims: {}, confirm: () => Promise.reject(new ProviderError('REKEY_ERR_UNAVAILABLE', 'TokenReview unreachable', { provider: name })) });
            case 'down':
              return Promise.reject(new ProviderError('REKEY_ERR_UNAVAILABLE', 'issuer unreachable', { provider: name }));
            default:
              return Promise.reject(new ProviderError('REKEY_ERR_DENIED', 'signature', { provider: name }));
          }
        },
      }),
  });
  return { deps, asked };
}

/** The refusal's code, or 'ok'. */
const outcome = (answer: Promise<unknown>) => answer.then(() => 'ok', (error: { code?: string }) => error.code ?? 'no code');
const garbage = SecretValue.of('not.a.jwt');

describe('an unauthenticated token request', () => {
  it('gets the same refusal for an audience no grant serves as for a served one, all authenticators refusing', async () => {
    const { deps } = depsWith({ ci: 'refuses', app: 'refuses' });
    const answers = await Promise.all(['api.example.com', 'ci.example.com', 'api.nobody.example'].map((audience) => outcome(exchangeToken(deps, delivery, garbage, audience))));
    expect(answers).toEqual(['unauthenticated', 'unauthenticated', 'unauthenticated']);
  });

  it('gets the same refusal whatever the audience while the authenticator of another audience is down', async () => {
    const { deps } = depsWith({ ci: 'down', app: 'refuses' });
    const answers = await Promise.all(['api.example.com', 'ci.example.com', 'api.nobody.example'].map((audience) => outcome(exchangeToken(deps, delivery, garbage, audience))));
    expect(new Set(answers).size).toBe(1);
  });
});

describe('an authenticated token request', () => {
  it('is told no_grant for an audience no grant serves, forbidden for a served one its authenticator has no grant for', async () => {
    const { deps } = depsWith({ ci: 'refuses', app: 'accepts' });
    expect(await outcome(exchangeToken(deps, delivery, garbage, 'api.nobody.example'))).toBe('no_grant');
    expect(await outcome(exchangeToken(deps, delivery, garbage, 'ci.example.com'))).toBe('forbidden');
    expect(await outcome(exchangeToken(deps, delivery, garbage, 'api.example.com'))).toBe('ok');
  });

  it('is authenticated by the audience’s own authenticator first, when two accept the credential', async () => {
    const { deps, asked } = depsWith({ ci: 'accepts', app: 'accepts' });
    const minted = await exchangeToken(deps, delivery, garbage, 'api.example.com');
    expect(minted).toMatchObject({ grant: 'mobile', subject: 'app:one' });
    expect(asked).toEqual(['app']);
  });
});

describe('a value request', () => {
  it('is authenticated by the secret’s own grants’ authenticator first, and the same refusal whatever the secret', async () => {
    const { deps, asked } = depsWith({ ci: 'accepts', app: 'accepts' });
    expect(await deliverValue(deps, delivery, garbage, 'api-key', undefined)).toMatchObject({ status: 'fresh', grant: 'app-values' });
    expect(asked).toEqual(['app']);
    const refusing = depsWith({ ci: 'down', app: 'refuses' }).deps;
    const answers = await Promise.all(['api-key', 'ci-key', 'no-such-secret'].map((secret) => outcome(deliverValue(refusing, delivery, garbage, secret, undefined))));
    expect(new Set(answers).size).toBe(1);
  });
});

describe('while an authenticator cannot verify', () => {
  it('a credential no other accepted is unverifiable (counted against its source), one whose remote check is down unavailable', async () => {
    expect(await outcome(exchangeToken(depsWith({ ci: 'down', app: 'refuses' }).deps, delivery, garbage, 'api.example.com'))).toBe('unverifiable');
    expect(await outcome(exchangeToken(depsWith({ ci: 'down', app: 'confirm-down' }).deps, delivery, garbage, 'api.example.com'))).toBe('unavailable');
    expect(await outcome(exchangeToken(depsWith({ ci: 'refuses', app: 'confirm-down' }).deps, delivery, garbage, 'api.example.com'))).toBe('unavailable');
    expect(await outcome(exchangeToken(depsWith({ ci: 'down', app: 'accepts' }).deps, delivery, garbage, 'api.example.com'))).toBe('ok');
  });
});
