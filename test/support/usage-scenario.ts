/**
 * One end-to-end usage scenario for a gateway that is a usage source but cannot throttle (Kong,
 * AWS API Gateway): the harness's worker runs the real UsageMonitor on its `usage` schedule
 * (every INTERVAL_MS, one window) against the gateway's fake, which counts the proxied traffic
 * in its real metrics format; keyed load on loopback, from a child process, drives the proxy. 10 per-client keys under
 * an `alert` spike rule and one key under a `revoke` ceiling get steady noisy traffic; then:
 * - steady traffic, after the warm-up and 8 windows: no rule fired, every key answered 2xx;
 * - one client's key jumps 20x: its spike is audited `alerted` in the first or second window
 *   holding spike traffic, the `usage.anomaly` notice reaches a webhook naming the rule, and
 *   no other key is acted on or refused (alert changes nothing at the gateway);
 * - the revoke key jumps over its ceiling (20x its rate, five times the ceiling, so that a starved
 *   load generator still crosses it): two windows later (the rule's default) it goes down
 *   the leak path (a report of source `usage`, delivery id `<rule>:<version>`), its version is
 *   revoked and the gateway refuses it, while the other keys keep working.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unexpectedAnswers } from './gateways/keyed-load.js';
import { keyedLoadProcess, type KeyedLoadProcess } from './gateways/keyed-load-process.js';
import { startHarness, type Harness } from './harness.js';
import { startNoticeReceiver, type NoticeReceiver } from './notice-receiver.js';
import { until } from './poll.js';

export interface UsageGateway {
  /** The rekey.yaml `providers:` entry of the target (usage collection is added here). */
  provider: Record<string, unknown>;
  /** Where keyed traffic goes, and the header that carries the key. */
  proxyUrl: string;
  header: string;
  /** What the gateway answers a key it does not accept. */
  refused: number;
  /** Environment variables the provider entry names with ${env:...}. */
  env?: Record<string, string>;
}

const INTERVAL_MS = 1000;
const STEADY = 4;
/** Two windows and room for a loaded machine. */
const SOON = 30 * INTERVAL_MS;

interface Anomaly {
  rule: string;
  action: string;
  done: string;
  windows: number;
  windowEnd: string;
  windowMs: number;
}

export function usageScenario(name: string, start: () => Promise<UsageGateway>): void {
  const family = `uf-${randomUUID().slice(0, 8)}`;
  const revoking = `ur-${randomUUID().slice(0, 8)}`;
  const clients = Array.from({ length: 10 }, (_, i) => `c${String(i + 1).padStart(2, '0')}`);
  const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;
  const WHSEC_ENV = `USAGETEST_WHSEC_${process.pid}`;
  let gateway: UsageGateway;
  let h: Harness;
  let receiver: NoticeReceiver;
  let load: KeyedLoadProcess;
  const keys = new Map<string, string>();

  const events = async (action: string, secret?: string) =>
    (await h.runtime.db.auditEvent.findMany({ where: { action, ...(secret ? { chain: secret } : {}) }, orderBy: { seq: 'asc' } })).map((r) => ({ secret: r.chain, data: r.data as unknown as Anomaly }));
  /**
   * Usage reads of the target that started after `from` and by `through` (ms): the windows ending
   * in between, from the worker's debug line of each read (its end and duration). A read under way
   * at `from` is not counted (its window may end before the spike).
   */
  const readsBetween = (from: number, through: number) =>
    h.logs
      .map((line) => JSON.parse(line) as { msg?: string; call?: string; provider?: string; time: number; ms: number })
      .filter((l) => l.msg === 'provider call' && l.call === 'target.readUsage' && l.provider === 'edge' && l.time - l.ms > from && l.time - l.ms <= through).length;
  const statuses = (key: string) => Object.fromEntries(load.answers(key));
  const count = (key: string, status: number) => statuses(key)[status] ?? 0;
  /** Every other key kept working: 200 only (unexpectedAnswers), counting everything the load sent so far. */
  const othersFine = async (acted: string[]) => {
    await load.synced();
    for (const [other, key] of keys) if (!acted.includes(other)) expect({ other, unexpected: unexpectedAnswers(load.answers(key)) }).toEqual({ other, unexpected: {} });
  };

  beforeAll(async () => {
    gateway = await start();
    receiver = await startNoticeReceiver(WHSEC);
    for (const [k, v] of Object.entries({ ...gateway.env, [WHSEC_ENV]: WHSEC })) process.env[k] = v;
    h = await startHarness({ label: `usage-${name}` });
    const edge = { ...gateway.provider, drift: { interval: '1h' }, usage: { interval: `${INTERVAL_MS}ms` } };
    await h.apply(`
env: { allow: ["USAGETEST_*", "PROVIDERTEST_*"] }
providers:
  vault: { type: local }
  edge: ${JSON.stringify(edge)}
notifications:
  destinations:
    oncall: { type: webhook, url: "${receiver.base}/hooks/oncall", insecure: true, secret: "\${env:${WHSEC_ENV}}", events: [usage.anomaly] }
usage:
  baseline: { halfLife: 20s, warmup: 3s }
  rules: [{ name: spike, metric: rate, factor: 5, minRate: 10, action: alert, cooldown: 1m }]
secrets:
  ${family}:
    clients: [${clients.join(', ')}]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_uf_ }
    targets: [edge]
  ${revoking}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ur_ }
    targets: [edge]
    usage: { rules: [{ name: volume, metric: rate, above: 15, action: revoke }] }
`);
    const names = [...clients.map((c) => `${family}/${c}`), revoking];
    for (let i = 0; i < names.length; i += 4) await Promise.all(names.slice(i, i + 4).map(async (n) => expect((await h.rotate(n, 60_000)).status).toBe('succeeded')));
    for (const n of names) keys.set(n, await h.currentValue(n));
    // Sent from a child process: this one runs the worker (and the gateway's fake), and starved it would send
    // the spikes late, past the windows they are judged in.
    load = await keyedLoadProcess({ url: gateway.proxyUrl, header: gateway.header, streams: [...keys.values()].map((key) => ({ key, rate: STEADY })) });
  }, 120_000);

  afterAll(async () => {
    await load?.stop();
    await h?.stop();
    await receiver?.close();
    for (const k of [...Object.keys(gateway?.env ?? {}), WHSEC_ENV]) delete process.env[k];
  });

  describe(`usage rules through ${name} (the worker's usage check)`, () => {
    it('steady noisy traffic on 11 keys: no rule fires over the warm-up and 8 windows after it', async () => {
      // Each window moves the last use of a used version forward.
      const seen = new Set<number>();
      await until(
        async () => {
          const v = await h.runtime.db.version.findFirst({ where: { secret: { name: `${family}/c01` }, state: 'current' }, select: { lastUsedAt: true } });
          if (v?.lastUsedAt) seen.add(v.lastUsedAt.getTime());
          return seen.size > 8;
        },
        60_000,
        '8 collection windows',
      );
      expect(await events('usage.anomaly')).toEqual([]);
      await othersFine([]);
      expect(await h.runtime.db.version.count({ where: { secret: { name: { startsWith: `${family}/` } }, state: 'current', lastUsedAt: { not: null } } })).toBe(clients.length);
    }, 90_000);

    it('a key jumping 20x is alerted within two windows: a notice names the rule; the gateway still accepts it and every other key', async () => {
      const secret = `${family}/c03`;
      const spiked = keys.get(secret)!;
      const spikeStart = Date.now();
      load.set({ key: spiked, rate: STEADY * 20 });
      await until(async () => (await events('usage.anomaly', secret)).length > 0, SOON, 'the spike audited');
      const [alerted] = await events('usage.anomaly', secret);
      expect(alerted!.data).toMatchObject({ rule: 'spike', action: 'alert', done: 'alerted' });
      // The first or second window holding spike traffic: readsBetween leaves out the read under way at
      // the spike's start, which may already hold some (then 0 or 1 counted reads; else 1 or 2).
      expect([0, 1, 2]).toContain(readsBetween(spikeStart, new Date(alerted!.data.windowEnd).getTime()));
      await until(() => Promise.resolve(receiver.accepted('/hooks/oncall').length > 0), SOON, 'the usage.anomaly notice delivered');
      const [delivered] = receiver.accepted('/hooks/oncall');
      expect(delivered!.signatureValid).toBe(true);
      expect(JSON.parse(delivered!.body)).toMatchObject({ type: 'rekey.usage.anomaly', data: { secret, rule: 'spike', done: 'alerted' } });
      const before = count(spiked, 200);
      await until(() => Promise.resolve(count(spiked, 200) > before + 20), SOON, 'the alerted key still accepted');
      load.set({ key: spiked, rate: STEADY });
      await load.synced();
      expect(unexpectedAnswers(load.answers(spiked))).toEqual({});
      await othersFine([]);
      expect(new Set((await events('usage.anomaly')).map((a) => a.secret))).toEqual(new Set([secret]));
    }, 90_000);

    it('a key over a revoke ceiling goes down the leak path after two windows (source usage, the rule named); the gateway refuses it', async () => {
      const key = keys.get(revoking)!;
      const version = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: revoking }, state: 'current' } });
      const spikeStart = Date.now();
      load.set({ key, rate: STEADY * 20 });
      await until(async () => (await events('usage.anomaly', revoking)).length > 0, SOON, 'the revoke rule fired');
      const [anomaly] = await events('usage.anomaly', revoking);
      expect(anomaly!.data).toMatchObject({ rule: 'volume', action: 'revoke', done: 'revoked', windows: 2 });
      // Two anomalous windows: the second or third window holding spike traffic (the first may hold
      // little of it), counted as for the alert above (1 or 2 counted reads, else 2 or 3).
      expect([1, 2, 3]).toContain(readsBetween(spikeStart, new Date(anomaly!.data.windowEnd).getTime()));
      const report = await h.runtime.db.leakReport.findFirstOrThrow({ where: { versionId: version.id } });
      expect(report).toMatchObject({ source: 'usage', deliveryId: `volume:${version.id}` });
      const [reported] = await events('leak.reported', revoking);
      expect(reported!.data).toMatchObject({ source: 'usage', deliveryId: `volume:${version.id}` });
      await until(async () => (await h.runtime.db.version.findUniqueOrThrow({ where: { id: version.id } })).state === 'revoked', SOON, 'the version revoked');
      const refusedBefore = count(key, gateway.refused);
      await until(() => Promise.resolve(count(key, gateway.refused) > refusedBefore + 5), SOON, 'the gateway refuses the revoked key');
      await othersFine([revoking]);
      // One report: its replacement, which Kong credits with the consumer's traffic until the old key is gone, is not revoked with it.
      expect(await h.runtime.db.leakReport.count()).toBe(1);
    }, 90_000);
  });
}
