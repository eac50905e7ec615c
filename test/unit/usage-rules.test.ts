// The usage rules' judgement of one window (src/core/usage-rules.ts), and their config (src/config/usage.ts).
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { usagePolicySchema } from '../../src/config/usage.js';
import { judge, newBaseline } from '../../src/core/usage-rules.js';
import { providers } from '../../src/registry.js';

const policy = usagePolicySchema.parse({
  baseline: { halfLife: '10s', warmup: '5s' },
  rules: [
    { name: 'spike', metric: 'rate', factor: 5, minRate: 10, action: 'throttle' },
    { name: 'ceiling', metric: 'sources', above: 20, action: 'revoke', cooldown: '1m' },
  ],
});
const second = (requests: number, sources = 1) => ({ ms: 1000, requests, errors: 0, sources });

describe('usage rules', () => {
  it('defaults: revoke waits for two windows, other actions for one; one of above and factor', () => {
    expect(policy.rules.map((r) => [r.name, r.windows, r.cooldownMs])).toEqual([
      ['spike', 1, 600_000],
      ['ceiling', 2, 60_000],
    ]);
    expect(usagePolicySchema.safeParse({ rules: [{ name: 'x', metric: 'rate', above: 1, factor: 2 }] }).success).toBe(false);
    expect(usagePolicySchema.safeParse({ rules: [{ name: 'x', metric: 'rate' }] }).success).toBe(false);
  });

  it('a spike rule is silent during the warm-up, then fires at factor x the learned rate (above minRate)', () => {
    expect(judge(policy, newBaseline(), second(400), 1000)).toEqual([]); // warm-up: learned, not judged
    const baseline = newBaseline();
    let t = 0;
    for (let i = 0; i < 9; i++) expect(judge(policy, baseline, second(i % 2 ? 6 : 2), (t += 1000))).toEqual([]);
    expect(baseline.mean.rate).toBeGreaterThan(2);
    expect(baseline.mean.rate).toBeLessThan(6);
    expect(judge(policy, baseline, second(8), (t += 1000))).toEqual([]); // under minRate
    const [verdict] = judge(policy, baseline, second(400), t + 1000);
    expect(verdict).toMatchObject({ rule: { name: 'spike' }, value: 400, streak: 1, due: true });
    // Not learned: the next quiet window is judged against the same baseline.
    expect(baseline.mean.rate).toBeLessThan(100);
  });

  it('the warm-up defaults to two half-lives and counts from the first window the key is used, after that window', () => {
    const defaults = usagePolicySchema.parse({ rules: [{ name: 'spike', metric: 'rate', factor: 5, action: 'alert' }] });
    expect([defaults.halfLifeMs, defaults.warmupMs]).toEqual([3_600_000, 7_200_000]);
    const derived = usagePolicySchema.parse({ baseline: { halfLife: '10s' }, rules: [{ name: 'spike', metric: 'rate', factor: 5, action: 'alert' }] });
    expect(derived.warmupMs).toBe(20_000);
    const baseline = newBaseline();
    let t = 0;
    // Deployed, not used yet: nothing learned, however long.
    for (let i = 0; i < 60; i++) expect(judge(derived, baseline, second(0), (t += 1000))).toEqual([]);
    expect(baseline).toMatchObject({ seeded: false, learnedMs: 0 });
    // A long first window of use (a slow read) seeds the averages but not the warm-up.
    expect(judge(derived, baseline, { ms: 60_000, requests: 60, errors: 0, sources: 1 }, (t += 60_000))).toEqual([]);
    expect(baseline).toMatchObject({ seeded: true, learnedMs: 0, mean: { rate: 1 } });
    for (let i = 0; i < 19; i++) expect(judge(derived, baseline, second(1), (t += 1000))).toEqual([]);
    // 19 s learned: still warming up, a 20x window is learned, not judged; at 20 s it is judged.
    expect(judge(derived, baseline, second(20), (t += 1000))).toEqual([]);
    expect(judge(derived, baseline, second(100), t + 1000)).toMatchObject([{ rule: { name: 'spike' }, due: true }]);
  });

  it('a revoke ceiling needs two windows in a row, then keeps quiet for its cool-down', () => {
    const baseline = newBaseline();
    expect(judge(policy, baseline, second(5, 30), 1000)[0]).toMatchObject({ due: false, streak: 1 });
    expect(judge(policy, baseline, second(5, 1), 2000)).toEqual([]); // the streak breaks
    expect(judge(policy, baseline, second(5, 30), 3000)[0]).toMatchObject({ due: false, streak: 1 });
    expect(judge(policy, baseline, second(5, 30), 4000)[0]).toMatchObject({ due: true, streak: 2 });
    expect(judge(policy, baseline, second(5, 30), 5000)[0]).toMatchObject({ due: false, streak: 3 });
    expect(judge(policy, baseline, second(5, 30), 64_000)[0]).toMatchObject({ due: true });
  });
});

describe('a throttle rule where it cannot act', () => {
  // Kong and AWS API Gateway collect usage but cannot throttle a key (docs/usage.md).
  const doc = (o: { own?: string; top?: string; kongUsage?: string }) => `providers:
  vault: { type: local }
  edge: { type: haproxy, runtimeApi: "unix:///tmp/none.sock", map: /tmp/none.map, stickTables: { keys: st_keys, sources: st_key_sources }, usage: { interval: 10s } }
  kong-edge: { type: kong, adminUrl: "http://127.0.0.1:1"${o.kongUsage ?? ', usage: { interval: 10s }'} }
  apigw: { type: aws-api-gateway, region: eu-west-1, usagePlanId: a1b2c3, usage: { interval: 5m } }
${o.top ?? ''}secrets:
  on-haproxy: { store: { provider: vault }, issuer: { type: random }, targets: [edge] }
  on-kong:
    store: { provider: vault }
    issuer: { type: random }
    targets: [edge, kong-edge]
${o.own ?? ''}`;
  const issues = (yaml: string) => parseConfig(yaml, 'rekey.yaml', providers).then(() => '', (error: Error) => error.message);
  const throttle = '{ rules: [{ name: spike, metric: rate, factor: 5, action: throttle }] }';

  it('is refused on a secret with a usage-collecting Kong or AWS API Gateway target, naming the rule and the target', async () => {
    expect(await issues(doc({ own: `    usage: ${throttle}\n` }))).toContain(
      'secrets.on-kong.usage.rules[0].action: rule "spike" throttles, but on-kong\'s target kong-edge (kong) cannot throttle a key: use alert or revoke',
    );
    const apigw = doc({ own: `    usage: ${throttle}\n` }).replace('targets: [edge, kong-edge]', 'targets: [apigw]');
    expect(await issues(apigw)).toContain("target apigw (aws-api-gateway) cannot throttle a key");
    // The top-level default: the message says which secret it cannot serve.
    expect(await issues(doc({ top: `usage: ${throttle}\n` }))).toContain("usage.rules[0].action: rule \"spike\" throttles, but on-kong's target kong-edge (kong) cannot throttle a key: use alert or revoke, or give on-kong its own usage:");
  });

  it('is accepted where every usage-collecting target throttles, and alert or revoke anywhere', async () => {
    expect(await issues(doc({ top: `usage: ${throttle}\n`, kongUsage: '' }))).toBe('');
    expect(await issues(doc({ top: `usage: ${throttle.replace('throttle', 'alert')}\n` }))).toBe('');
    expect(await issues(doc({ own: `    usage: ${throttle.replace('throttle', 'revoke')}\n`, top: `usage: ${throttle}\n` }))).toBe('');
  });
});

describe('usage: { interval } on a provider that is not a usage source', () => {
  const doc = (edge: string) => `providers:
  vault: { type: local }
  edge: ${edge}
secrets:
  api: { store: { provider: vault }, issuer: { type: random }, targets: [edge] }
`;
  const refusal = (yaml: string) => parseConfig(yaml, 'rekey.yaml', providers).then(() => undefined, (error: unknown) => error);
  const haproxy = 'type: haproxy, runtimeApi: "unix:///tmp/none.sock", map: /tmp/none.map';

  it('is refused with REKEY_ERR_CONFIG naming the entry: a provider type with no usage capability, HAProxy without stick tables', async () => {
    const nginx = await refusal(doc('{ type: nginx, map: /tmp/none.map, usage: { interval: 10s } }'));
    expect(nginx).toMatchObject({ code: 'REKEY_ERR_CONFIG', issues: [{ path: 'providers.edge.usage', message: 'nginx targets are not usage sources (docs/usage.md lists them): remove usage:' }] });
    const bare = await refusal(doc(`{ ${haproxy}, usage: { interval: 10s } }`));
    expect(bare).toMatchObject({ code: 'REKEY_ERR_CONFIG', issues: [{ path: 'providers.edge.usage', message: expect.stringContaining('haproxy reports usage only with stickTables:') as string }] });
  });

  it('is accepted on a usage source, and the same entries without usage: are accepted', async () => {
    expect(await refusal(doc(`{ ${haproxy}, stickTables: { keys: st_keys, sources: st_key_sources }, usage: { interval: 10s } }`))).toBeUndefined();
    expect(await refusal(doc(`{ ${haproxy} }`))).toBeUndefined();
  });
});
