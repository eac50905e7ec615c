// The lifecycle's rules in core: the transitions table matches DESIGN.md's diagram, and
// planPromotion builds every promotion (which version becomes what, grace end, next step).
import { describe, expect, it } from 'vitest';
import type { RekeyError } from '../../src/core/errors.js';
import { planPromotion } from '../../src/core/lifecycle.js';
import { canTransition, VERSION_STATES, VERSION_TRANSITIONS, type VersionRecord, type VersionState } from '../../src/core/model.js';
import { versionRecord } from '../support/versions.js';

const NOW = new Date('2026-12-03T12:00:00Z');
const later = (ms: number) => new Date(NOW.getTime() + ms);

const version = (number: number, state: VersionState, extra: Partial<VersionRecord> = {}) => versionRecord(number, state, NOW, extra);

describe('VERSION_TRANSITIONS', () => {
  it('allows exactly the changes of the lifecycle in DESIGN.md', () => {
    const allowed = VERSION_STATES.flatMap((from) => VERSION_STATES.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`));
    expect(allowed.sort()).toEqual(
      [
        'issuing->pending',
        'issuing->failed',
        'issuing->compromised',
        'pending->current',
        'pending->failed',
        'pending->compromised',
        'current->previous',
        'current->compromised',
        'previous->retired',
        'previous->compromised',
        'retired->revoked',
        'retired->compromised',
        'compromised->revoked',
      ].sort(),
    );
  });

  it('revoked and failed are final, and no state moves to itself or back to issuing', () => {
    expect(VERSION_TRANSITIONS.revoked).toEqual([]);
    expect(VERSION_TRANSITIONS.failed).toEqual([]);
    for (const state of VERSION_STATES) {
      expect(canTransition(state, state)).toBe(false);
      expect(canTransition(state, 'issuing')).toBe(false);
    }
  });
});

describe('planPromotion', () => {
  it('pending -> current, current -> previous with the grace, an earlier previous in grace cut to now; then done (the run finishes with it)', () => {
    const inGrace = version(1, 'previous', { graceEndsAt: later(60_000) });
    const over = version(0, 'previous', { graceEndsAt: later(-1) });
    const plan = planPromotion({ version: version(3, 'pending'), current: version(2, 'current'), previous: [over, inGrace], now: NOW }, 3_600_000);
    expect(plan.changes.map((c) => [c.version.number, c.version.state, c.to, c.set, c.audit.action])).toEqual([
      [1, 'previous', 'previous', { graceEndsAt: NOW }, 'version.grace-cut'],
      [2, 'current', 'previous', { graceEndsAt: later(3_600_000) }, 'version.previous'],
      [3, 'pending', 'current', { promotedAt: NOW }, 'version.current'],
    ]);
    expect(plan.promotedAt).toEqual(NOW);
    expect(plan.nextStep).toBe('done');
    for (const change of plan.changes) if (change.to !== change.version.state) expect(canTransition(change.version.state, change.to)).toBe(true);
  });

  it("with keepEarlierGrace (a signing key), an earlier previous keeps its grace: tokens it signed live until then", () => {
    const inGrace = version(1, 'previous', { graceEndsAt: later(60_000) });
    const plan = planPromotion({ version: version(3, 'pending'), current: version(2, 'current'), previous: [inGrace], now: NOW }, 3_600_000, { keepEarlierGrace: true });
    expect(plan.changes.map((c) => [c.version.number, c.to, c.audit.action])).toEqual([
      [2, 'previous', 'version.previous'],
      [3, 'current', 'version.current'],
    ]);
  });

  it('a current version reported leaked goes to compromised with its grace ended, whatever the grace', () => {
    const plan = planPromotion({ version: version(2, 'pending'), current: version(1, 'current', { compromisedAt: NOW }), previous: [], now: NOW }, 86_400_000);
    expect(plan.changes[0]).toMatchObject({ to: 'compromised', set: { graceEndsAt: NOW }, audit: { action: 'version.compromised' } });
  });

  it('the first version of a secret replaces nothing', () => {
    const plan = planPromotion({ version: version(1, 'pending'), current: null, previous: [], now: NOW }, 1000);
    expect(plan.changes.map((c) => c.to)).toEqual(['current']);
  });

  it('a repeat after a crash (already current) changes nothing and goes on to finalize', () => {
    const v = version(2, 'current');
    expect(planPromotion({ version: v, current: v, previous: [], now: NOW }, 1000)).toEqual({ changes: [], nextStep: 'finalize' });
  });

  it.each(['revoked', 'compromised'] as const)('a predecessor taken down (%s) while the store held it as current: finalize destroys it there first', (state) => {
    const displaced = version(1, state, { compromisedAt: NOW, storeVersionId: 'sv-1' });
    expect(planPromotion({ version: version(2, 'pending'), current: null, previous: [], displaced, now: NOW }, 0).nextStep).toBe('finalize');
    expect(planPromotion({ version: version(2, 'pending'), current: null, previous: [], displaced: { ...displaced, storeVersionId: null }, now: NOW }, 0).nextStep).toBe('done');
  });

  it.each(['issuing', 'failed', 'compromised', 'retired', 'revoked'] as const)('refuses a %s version with REKEY_ERR_COMPROMISED', (state) => {
    expect(() => planPromotion({ version: version(2, state), current: null, previous: [], now: NOW }, 1000)).toThrow(
      expect.objectContaining({ code: 'REKEY_ERR_COMPROMISED' }) as RekeyError,
    );
  });
});
