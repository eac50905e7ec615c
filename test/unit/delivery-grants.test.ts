// Which grant serves a request (src/core/delivery.ts grantsOf): the lists are kept per applied
// section and audience or secret, so every request after the first reads the same list. A list
// must never serve another audience or secret, nor outlive its section.
import { describe, expect, it } from 'vitest';
import type { DeliverySpec } from '../../src/core/delivery.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { exchangeToken } from '../../src/core/token-exchange.js';
import { deliverValue } from '../../src/core/value-delivery.js';
import { fakeDeliveryDeps } from '../support/delivery-deps.js';

const token = (signingKey: string, audience: string) => ({ signingKey, audience, ttlMs: 300_000, claims: { copy: [], fixed: {} } });
const section = (): DeliverySpec => ({
  issuer: 'https://rekey.test',
  grants: {
    orders: { name: 'orders', authenticator: 'app', subjects: ['app:*'], token: token('orders-key', 'orders') },
    billing: { name: 'billing', authenticator: 'app', subjects: ['app:billing'], token: token('billing-key', 'billing') },
    payments: { name: 'payments', authenticator: 'app', subjects: ['app:*'], value: { secret: 'payments-key', ttlMs: 300_000 } },
    ledger: { name: 'ledger', authenticator: 'app', subjects: ['app:billing'], value: { secret: 'ledger-key', ttlMs: 300_000 } },
  },
});

const deps = (subject: string) => fakeDeliveryDeps({ authenticator: () => Promise.resolve({ authenticate: () => Promise.resolve({ id: subject, claims: {} }) }) });

describe('grant lists kept per section', () => {
  it('serve each audience its own grant, and refuse a subject the audience does not grant, however often asked', async () => {
    const delivery = section();
    const { deps: app, signedWith } = deps('app:one');
    for (let i = 0; i < 3; i++) {
      expect((await exchangeToken(app, delivery, SecretValue.of('c'), 'orders')).grant).toBe('orders');
      await expect(exchangeToken(app, delivery, SecretValue.of('c'), 'billing')).rejects.toMatchObject({ code: 'forbidden' });
      await expect(exchangeToken(app, delivery, SecretValue.of('c'), 'unknown')).rejects.toMatchObject({ code: 'no_grant' });
    }
    expect(signedWith).toEqual(['orders-key', 'orders-key', 'orders-key']);
    const { deps: billing, signedWith: billed } = deps('app:billing');
    expect((await exchangeToken(billing, delivery, SecretValue.of('c'), 'billing')).grant).toBe('billing');
    expect(billed).toEqual(['billing-key']);
  });

  it('serve each secret its own value grant', async () => {
    const delivery = section();
    const { deps: app } = deps('app:one');
    for (let i = 0; i < 3; i++) {
      expect(await deliverValue(app, delivery, SecretValue.of('c'), 'payments-key', undefined)).toMatchObject({ status: 'fresh', grant: 'payments' });
      await expect(deliverValue(app, delivery, SecretValue.of('c'), 'ledger-key', undefined)).rejects.toMatchObject({ code: 'forbidden' });
    }
  });

  it('follow a new section: a grant removed by a config revision serves nothing', async () => {
    const { deps: app } = deps('app:one');
    const before = section();
    expect((await exchangeToken(app, before, SecretValue.of('c'), 'orders')).grant).toBe('orders');
    const after: DeliverySpec = { ...before, grants: { billing: before.grants.billing! } };
    await expect(exchangeToken(app, after, SecretValue.of('c'), 'orders')).rejects.toMatchObject({ code: 'no_grant' });
  });
});
