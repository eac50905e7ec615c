// The behaviour every real-gateway target must show through the real proxy, shared by
// the haproxy, caddy and nginx test files: overlap acceptance, rejection after retire,
// and zero rejections of a valid key while a client keeps sending during rotations.
import { afterEach, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/ports.js';
import { call, newVersion } from '../../conformance/refs.js';
import type { Gateway } from './gateway.js';
import { ask, continuousTraffic, retireAll as cleanup, rotate } from './traffic.js';

export function throughGateway(name: string, o: { gateway: () => Gateway; target: (secret: string) => Target; secret: string }): void {
  describe(`through the real ${name}`, () => {
    afterEach(() => cleanup(o.target(o.secret)));

    it('accepts current and previous keys during the overlap, then rejects the retired one and random keys', async () => {
      const gateway = o.gateway();
      const target = o.target(o.secret);
      const previous = newVersion(o.secret, `${o.secret}-consumer`);
      const current = newVersion(o.secret, `${o.secret}-consumer`);
      await target.deploy(previous.ref, previous.value, call());
      await target.deploy(current.ref, current.value, call());
      await target.verify(current.ref, current.value, call());

      for (const version of [previous, current]) {
        const answer = await ask(gateway.url, gateway.header, version.value.reveal());
        expect(answer.status).toBe(200);
        // The backend echoes the consumer id the gateway attached to the key.
        expect(answer.body).toBe(`consumer=${o.secret}-consumer`);
      }
      await target.retire(previous.ref, call());
      expect((await ask(gateway.url, gateway.header, previous.value.reveal())).status).toBeOneOf([401, 403]);
      expect((await ask(gateway.url, gateway.header, current.value.reveal())).status).toBe(200);
      expect((await ask(gateway.url, gateway.header, newVersion(o.secret).value.reveal())).status).toBeOneOf([401, 403]);
      expect((await ask(gateway.url, gateway.header, undefined)).status).toBeOneOf([401, 403]);
      await target.retire(current.ref, call());
      expect((await ask(gateway.url, gateway.header, current.value.reveal())).status).toBeOneOf([401, 403]);
    });

    it('a client sending every 2ms sees zero rejections of a valid key during full rotations', async () => {
      const gateway = o.gateway();
      const target = o.target(o.secret);
      const rotations = 5;
      let live = newVersion(o.secret);
      await target.deploy(live.ref, live.value, call());
      await target.verify(live.ref, live.value, call());
      const traffic = continuousTraffic({ url: gateway.url, header: gateway.header, key: live.value.reveal(), intervalMs: 2, workers: 2 });
      try {
        for (let i = 0; i < rotations; i++) {
          const next = newVersion(o.secret);
          await rotate(target, live, next, traffic, 40);
          live = next;
        }
      } finally {
        const stats = await traffic.stop();
        await target.retire(live.ref, call());
        console.log(
          `${name}: ${rotations} rotations under continuous traffic: ${stats.sent} requests sent, ${stats.rejected} rejected, ` +
            `${stats.errors} errors (${stats.retried} retried on a new connection), ${stats.accepted} accepted in ${stats.durationMs}ms`,
        );
        expect(stats.sent).toBeGreaterThan(50);
        expect(stats.rejected).toBe(0);
        expect(stats.errors).toBe(0);
      }
    });
  });
}
