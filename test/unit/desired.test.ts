// The desired state of a target (src/core/desired.ts) and what the drift check calls a
// difference (compare in src/core/drift.ts): which versions must be held, which may stay,
// which must go, for targets that hold every key and for those that use the newest only.
import { describe, expect, it } from 'vitest';
import { desiredState, GRACE_MARGIN_MS, wantOf } from '../../src/core/desired.js';
import { compare } from '../../src/core/drift.js';
import type { VersionRecord, VersionState } from '../../src/core/model.js';
import { versionRecord } from '../support/versions.js';

const NOW = new Date('2026-12-03T12:00:00Z');
const later = (ms: number) => new Date(NOW.getTime() + ms);

const version = (number: number, state: VersionState, extra: Partial<VersionRecord> = {}) => versionRecord(number, state, NOW, extra);
const numbers = (versions: readonly VersionRecord[]) => versions.map((v) => v.number);
const held = (...ns: number[]) => ns.map((n) => ({ fingerprint: `fp-${n}` }));

describe('wantOf', () => {
  it('accepts the current version and a previous one well inside its grace', () => {
    expect(wantOf(version(2, 'current'), NOW)).toBe('accept');
    expect(wantOf(version(1, 'previous', { graceEndsAt: later(60_000) }), NOW)).toBe('accept');
  });

  it('leaves a previous version near or past the end of its grace to its retirement', () => {
    expect(wantOf(version(1, 'previous', { graceEndsAt: later(GRACE_MARGIN_MS - 1) }), NOW)).toBe('leave');
    expect(wantOf(version(1, 'previous', { graceEndsAt: later(-1) }), NOW)).toBe('leave');
  });

  it('keeps a pending version (its rotation owns it) and a leaked current one (the leak path owns it)', () => {
    expect(wantOf(version(3, 'pending'), NOW)).toBe('keep');
    expect(wantOf(version(2, 'current', { compromisedAt: NOW }), NOW)).toBe('keep');
  });

  it('refuses retired, revoked, compromised and rolled-back versions', () => {
    for (const state of ['retired', 'revoked', 'compromised', 'failed'] as const) expect(wantOf(version(1, state), NOW)).toBe('refuse');
  });
});

describe('desiredState', () => {
  it('sorts each secret\'s versions newest first and drops those without a key', () => {
    const desired = desiredState(
      [version(1, 'revoked'), version(3, 'pending'), version(2, 'current'), version(4, 'issuing', { fingerprint: null }), version(0, 'previous', { graceEndsAt: later(60_000) })],
      NOW,
    );
    expect(numbers(desired.accept)).toEqual([2, 0]);
    expect(numbers(desired.keep)).toEqual([3]);
    expect(numbers(desired.refuse)).toEqual([1]);
  });
});

describe('compare', () => {
  const desired = desiredState([version(1, 'retired'), version(2, 'previous', { graceEndsAt: later(60_000) }), version(3, 'current'), version(4, 'pending')], NOW);

  it('a target holding every key: each accepted version must be there, refused ones must not', () => {
    expect(compare(desired, { entries: held(2, 3, 4), holds: 'all' })).toEqual({ missing: [], unwanted: [] });
    const drift = compare(desired, { entries: held(1, 99), holds: 'all' });
    expect(numbers(drift.missing)).toEqual([3, 2]);
    expect(numbers(drift.unwanted)).toEqual([1]);
  });

  it('a pending version missing is not drift: the rotation deploys it (or rolls it back)', () => {
    expect(compare(desired, { entries: held(2, 3), holds: 'all' })).toEqual({ missing: [], unwanted: [] });
  });

  it('a target using the newest key: the current one, or a newer pending one a rotation deployed', () => {
    expect(compare(desired, { entries: held(3), holds: 'newest' }).missing).toEqual([]);
    expect(compare(desired, { entries: held(4, 3), holds: 'newest' }).missing).toEqual([]);
    expect(compare(desired, { entries: held(4), holds: 'newest' }).missing).toEqual([]);
    expect(numbers(compare(desired, { entries: held(2), holds: 'newest' }).missing)).toEqual([3]);
    expect(numbers(compare(desired, { entries: held(1), holds: 'newest' }).unwanted)).toEqual([1]);
  });

  it('matches entries by version id as well as by fingerprint', () => {
    expect(compare(desired, { entries: [{ versionId: 'v3' }, { versionId: 'v2' }], holds: 'all' })).toEqual({ missing: [], unwanted: [] });
  });
});
