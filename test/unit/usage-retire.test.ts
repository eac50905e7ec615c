// Usage-aware retirement: its config (`retire:`, src/config/schema.ts) and the grace changes it
// plans under the secret's lock (src/core/usage-retire.ts).
import { describe, expect, it } from 'vitest';
import { fromDocument, parseConfig } from '../../src/config/load.js';
import { computePlan, formatPlan } from '../../src/config/plan.js';
import { planHold, planUnused, stillUsed } from '../../src/core/usage-retire.js';
import { providers } from '../../src/registry.js';
import { versionRecord } from '../support/versions.js';

const edge = (usage: string) => `  edge: { type: haproxy, runtimeApi: "unix:///tmp/none.sock", map: /tmp/none.map, stickTables: { keys: st_keys, sources: st_key_sources }${usage} }\n`;
const doc = (retire: string, { usage = ', usage: { interval: 10s }', top = '' } = {}) => `providers:
  vault: { type: local }
${edge(usage)}${top}secrets:
  api:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_t_ }
    targets: [edge]
    grace: 1h
${retire}`;

async function issues(yaml: string): Promise<string> {
  return parseConfig(yaml, 'rekey.yaml', providers).then(
    () => '',
    (error: Error) => error.message,
  );
}

describe('retire: in rekey.yaml', () => {
  it('defaults whenUnusedFor to 10m and maxGrace to the grace; a secret takes the top-level default', async () => {
    const own = await parseConfig(doc('    retire: {}\n'), 'rekey.yaml', providers);
    expect(own.config.secrets.api!.retire).toEqual({ whenUnusedForMs: 600_000, maxGraceMs: 3_600_000 });
    const top = await parseConfig(doc('', { top: 'retire: { whenUnusedFor: 5m, maxGrace: 7d }\n' }), 'rekey.yaml', providers);
    expect(top.config.secrets.api!.retire).toEqual({ whenUnusedForMs: 300_000, maxGraceMs: 7 * 86_400_000 });
  });

  it('refuses maxGrace under the grace, whenUnusedFor under two usage windows, and targets that collect no usage', async () => {
    expect(await issues(doc('    retire: { maxGrace: 30m }\n'))).toContain('secrets.api.retire.maxGrace: maxGrace must be at least the grace of api (1h)');
    expect(await issues(doc('    retire: { whenUnusedFor: 15s }\n'))).toContain('secrets.api.retire.whenUnusedFor: whenUnusedFor must span at least two usage windows');
    expect(await issues(doc('    retire: {}\n', { usage: '' }))).toContain('secrets.api.retire: retire: needs usage collection on every target (usage: on its providers: entry); not on edge');
    // The top-level default passes over a secret it cannot apply to.
    const blind = await parseConfig(doc('', { usage: '', top: 'retire: {}\n' }), 'rekey.yaml', providers);
    expect(blind.config.secrets.api!.retire).toBeUndefined();
  });

  it('refuses a target whose usage is not per key (Kong counts per consumer): a previous key would look used while its successor is', async () => {
    const kong = `providers:
  vault: { type: local }
  kong-edge: { type: kong, adminUrl: "http://127.0.0.1:8001", usage: { interval: 10s } }
RETIREsecrets:
  api:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_t_ }
    targets: [kong-edge]
    grace: 1h
`;
    expect(await issues(`${kong.replace('RETIRE', '')}    retire: { maxGrace: 7d }\n`)).toContain('secrets.api.retire: retire: needs usage counted per key on every target; not on kong-edge (kong)');
    const fallback = await parseConfig(kong.replace('RETIRE', 'retire: {}\n'), 'rekey.yaml', providers);
    expect(fallback.config.secrets.api!.retire).toBeUndefined();
    // A revision applied before this was refused still loads (workers read it again), without the policy.
    const stored = await fromDocument({ ...fallback.document, secrets: { api: { ...(fallback.document.secrets as { api: object }).api, retire: {} } } }, 'revision 1', providers);
    expect(stored.config.secrets.api!.retire).toBeUndefined();
  });

  it('shows in the apply plan', async () => {
    const before = await parseConfig(doc(''), 'rekey.yaml', providers);
    const after = await parseConfig(doc('    retire: { maxGrace: 7d }\n'), 'rekey.yaml', providers);
    const stored = Object.entries(before.document.secrets as Record<string, unknown>).map(([name, spec]) => ({ name, spec, specHash: 'x', removedAt: null }));
    expect(formatPlan(computePlan(after, stored, before.document), 'rekey.yaml')).toContain("~ secret api (retire)");
  });
});

describe('grace changes by usage', () => {
  const t0 = new Date('2026-12-01T00:00:00Z');
  const at = (ms: number) => new Date(t0.getTime() + ms);
  const policy = { graceMs: 3_600_000, retire: { whenUnusedForMs: 600_000, maxGraceMs: 7_200_000 } };
  const current = versionRecord(2, 'current', t0, { promotedAt: t0 });

  it('a version used within whenUnusedFor is still in use (10 min without retire:)', () => {
    const used = versionRecord(1, 'previous', t0, { lastUsedAt: at(0) });
    expect(stillUsed(used, policy, at(599_000))).toBe(true);
    expect(stillUsed(used, policy, at(600_000))).toBe(false);
    expect(stillUsed(used, {}, at(599_000))).toBe(true);
    expect(stillUsed(versionRecord(1, 'previous', t0), {}, at(1))).toBe(false);
  });

  it('holds a grace that ran its course up to maxGrace after the successor was promoted; a cut grace stays cut', () => {
    const natural = versionRecord(1, 'previous', t0, { graceEndsAt: at(3_600_000) });
    const [held] = planHold({ current, previous: [natural], now: at(3_601_000) }, 'v1', policy);
    expect(held).toMatchObject({ to: 'previous', set: { graceEndsAt: at(7_200_000) }, audit: { action: 'version.grace-held' } });
    const cut = versionRecord(1, 'previous', t0, { graceEndsAt: at(60_000) });
    expect(planHold({ current, previous: [cut], now: at(61_000) }, 'v1', policy)).toEqual([]);
    const atMax = versionRecord(1, 'previous', t0, { graceEndsAt: at(7_200_000) });
    expect(planHold({ current, previous: [atMax], now: at(7_201_000) }, 'v1', policy)).toEqual([]);
    expect(planHold({ current: null, previous: [natural], now: at(3_601_000) }, 'v1', policy)).toEqual([]);
  });

  it('cuts a grace to now when the version was not used after the use it was judged by', () => {
    const quiet = versionRecord(1, 'previous', t0, { graceEndsAt: at(3_600_000), lastUsedAt: at(1000) });
    const [cut] = planUnused({ current, previous: [quiet], now: at(700_000) }, 'v1', at(1000), 600_000);
    expect(cut).toMatchObject({ set: { graceEndsAt: at(700_000) }, audit: { action: 'version.grace-cut', data: { reason: 'unused' } } });
    // Used again since (another worker recorded it): no cut.
    expect(planUnused({ current, previous: [quiet], now: at(700_000) }, 'v1', null, 600_000)).toEqual([]);
    const over = versionRecord(1, 'previous', t0, { graceEndsAt: at(1000) });
    expect(planUnused({ current, previous: [over], now: at(2000) }, 'v1', null, 600_000)).toEqual([]);
  });
});
