import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { Admission, isRefusal, type Ticket } from '../../src/http/admission.js';
import { sourceOf } from '../../src/http/rate-limit.js';

const admitted = (value: ReturnType<Admission['enter']>): Ticket => {
  if (isRefusal(value)) throw new Error(`refused: ${value.reason}`);
  return value;
};

describe('Admission', () => {
  it('caps requests awaiting authentication (503 beyond); a slot comes back once, on release or when the response closes', () => {
    const admission = new Admission({ maxInFlight: 3 });
    const response = new EventEmitter() as unknown as ServerResponse;
    const a = admitted(admission.enter('10.0.0.1'));
    admitted(admission.enter('10.0.0.2', response));
    admitted(admission.enter('10.0.0.3'));
    expect(admission.enter('10.0.0.4')).toEqual({ status: 503, reason: 'busy', retryAfter: 1 });
    a.release();
    a.release(); // idempotent: one slot back, not two
    admitted(admission.enter('10.0.0.4'));
    expect(isRefusal(admission.enter('10.0.0.5'))).toBe(true);
    response.emit('close'); // a request that never reached authentication (413, client gone)
    admitted(admission.enter('10.0.0.5'));
  });

  it('keeps admitting a source over its failed-authentication limit, but such sources hold only their share', () => {
    const admission = new Admission({ maxInFlight: 10, maxInFlightOverLimit: 2, failures: 3, failuresWindowMs: 60_000, now: () => 0 });
    for (let i = 0; i < 3; i++) admission.failed('10.0.0.66');
    // Over its limit, yet admitted: a genuine sender behind the same address must get through.
    const first = admitted(admission.enter('10.0.0.66'));
    admitted(admission.enter('10.0.0.66'));
    expect(admission.enter('10.0.0.66')).toMatchObject({ status: 429, reason: 'auth_failures' });
    // Other sources are untouched by its failures and still have the rest of the cap.
    for (let i = 0; i < 8; i++) admitted(admission.enter(`10.0.1.${i}`));
    expect(admission.enter('10.0.2.1')).toMatchObject({ status: 503, reason: 'busy' });
    first.release();
    admitted(admission.enter('10.0.0.66'));
  });

  it('counts a request whose response closes before its authentication ended as a failure of its source, and one released first not at all', () => {
    const admission = new Admission({ maxInFlight: 10, maxInFlightOverLimit: 0, failures: 1, failuresWindowMs: 60_000, now: () => 0 });
    const authenticated = new EventEmitter() as unknown as ServerResponse;
    admitted(admission.enter('10.0.0.8', authenticated)).release();
    authenticated.emit('close');
    admitted(admission.enter('10.0.0.8')).release();
    const slow = new EventEmitter() as unknown as ServerResponse;
    admitted(admission.enter('10.0.0.8', slow));
    slow.emit('close'); // a body never finished, or its client gone
    expect(admission.enter('10.0.0.8')).toMatchObject({ status: 429, reason: 'auth_failures' });
  });

  it('forgives failures at the bucket rate', () => {
    const clock = { now: 0 };
    const admission = new Admission({ maxInFlight: 10, maxInFlightOverLimit: 0, failures: 2, failuresWindowMs: 60_000, now: () => clock.now });
    admission.failed('10.0.0.66');
    admission.failed('10.0.0.66');
    expect(admission.enter('10.0.0.66')).toMatchObject({ status: 429, retryAfter: 30 });
    clock.now = 30_000;
    admitted(admission.enter('10.0.0.66'));
  });

  it("counts a source's requests awaiting authentication against its allowance: a bucket refilled by one token admits one of a batch within the limit, not all", () => {
    const clock = { now: 0 };
    const admission = new Admission({ maxInFlight: 10, maxInFlightOverLimit: 1, failures: 2, failuresWindowMs: 60_000, now: () => clock.now });
    admission.failed('10.0.0.66');
    admission.failed('10.0.0.66');
    clock.now = 30_000; // one failure forgiven
    const first = admitted(admission.enter('10.0.0.66'));
    const second = admitted(admission.enter('10.0.0.66')); // over its limit with the first one awaiting: the share of such sources
    expect(admission.enter('10.0.0.66')).toMatchObject({ status: 429, reason: 'auth_failures' });
    first.release(); // authenticated: it failed nothing
    second.release();
    admitted(admission.enter('10.0.0.66')); // nothing awaits: its token admits one again
    admitted(admission.enter('10.0.0.67')); // another source is untouched
  });

  it('counts an IPv6 source by its /64 (one host holds all of it), an IPv4-mapped one as its IPv4 address', () => {
    const admission = new Admission({ maxInFlight: 10, maxInFlightOverLimit: 0, failures: 2, failuresWindowMs: 60_000, now: () => 0 });
    admission.failed('2001:db8:0:7::1');
    admission.failed('2001:0db8:0000:0007:ffff:1:2:3');
    expect(admission.enter('2001:db8:0:7:abcd::99')).toMatchObject({ status: 429 });
    admitted(admission.enter('2001:db8:0:8::1')); // the next /64: another subscriber
    admission.failed('::ffff:10.0.0.7');
    admission.failed('10.0.0.7');
    expect(admission.enter('10.0.0.7')).toMatchObject({ status: 429 });
    expect([sourceOf('::1'), sourceOf('fe80::1%eth0'), sourceOf('2001:db8::'), sourceOf('192.0.2.1')]).toEqual(['0:0:0:0::/64', 'fe80:0:0:0::/64', '2001:db8:0:0::/64', '192.0.2.1']);
  });

  it('keeps a source over its failure limit over it, however many other sources fail meanwhile (10,000 other /64s of its /48, once each)', () => {
    const admission = new Admission({ now: () => 0 });
    const attacker = '2001:db8:aaaa:1::1';
    for (let i = 0; i < 31; i++) admission.failed(attacker);
    /** Whether the source is over its limit: 9 requests at once, one more than the share of sources over it. */
    const overLimit = (address: string) => {
      const tickets = Array.from({ length: 9 }, () => admission.enter(address));
      for (const t of tickets) if (!isRefusal(t)) t.release();
      return tickets.some((t) => isRefusal(t) && t.reason === 'auth_failures');
    };
    expect(overLimit(attacker)).toBe(true);
    for (let i = 0; i < 10_000; i++) admission.failed(`2001:db8:aaaa:${(i + 2).toString(16)}::1`);
    expect(overLimit(attacker)).toBe(true);
    expect(overLimit('2001:db8:aaaa:2::1')).toBe(false);
  });

  it('keeps the part of the cap unproven sources cannot hold for sources proven by an authenticated request: many unproven addresses fill only their share', () => {
    const admission = new Admission({ maxInFlight: 8, maxInFlightUnproven: 4, maxPerSource: 2, now: () => 0 });
    admission.succeeded('10.0.0.1');
    // Unproven addresses, two at a time each (their own cap), fill their share of 4 …
    const refused = Array.from({ length: 6 }, (_, i) => [admission.enter(`10.0.9.${i}`), admission.enter(`10.0.9.${i}`), admission.enter(`10.0.9.${i}`)]).flat().filter(isRefusal);
    expect(refused.filter((r) => r.reason === 'source_busy')).toHaveLength(2); // the third request of each of the first two
    expect(refused.filter((r) => r.reason === 'busy')).toHaveLength(12); // every request of the other four
    expect(admission.counts()).toEqual({ inFlight: 4, unproven: 4, overLimit: 0 });
    // … a new address is refused while they hold it, and the proven one still has the rest of the cap.
    expect(admission.enter('10.0.0.2')).toEqual({ status: 503, reason: 'busy', retryAfter: 1 });
    const proven = Array.from({ length: 4 }, () => admitted(admission.enter('10.0.0.1')));
    expect(admission.enter('10.0.0.1')).toMatchObject({ status: 503, reason: 'busy' }); // the whole cap is held now
    proven[0]!.release();
    admitted(admission.enter('10.0.0.1'));
  });

  it('caps the requests one source has awaiting authentication, proven or not (429), however much of the cap is free', () => {
    const admission = new Admission({ maxPerSource: 3, maxPerProvenSource: 5, now: () => 0 });
    const unproven = Array.from({ length: 3 }, () => admitted(admission.enter('10.0.0.3')));
    expect(admission.enter('10.0.0.3')).toEqual({ status: 429, reason: 'source_busy', retryAfter: 1 });
    expect(admission.enter('2001:db8:0:3::1')).not.toHaveProperty('status'); // another source is untouched
    unproven[0]!.release();
    admitted(admission.enter('10.0.0.3'));
    admission.succeeded('10.0.0.4');
    for (let i = 0; i < 5; i++) admitted(admission.enter('10.0.0.4'));
    expect(admission.enter('10.0.0.4')).toMatchObject({ status: 429, reason: 'source_busy' });
  });

  it('admits a new, unproven caller while nothing floods the cap, and proves its source once it authenticates', () => {
    const admission = new Admission({ maxInFlight: 4, maxInFlightUnproven: 1, now: () => 0 });
    const first = admitted(admission.enter('192.0.2.10'));
    expect(admission.counts()).toMatchObject({ unproven: 1 });
    admission.succeeded('192.0.2.10');
    first.release();
    admitted(admission.enter('192.0.2.10'));
    admitted(admission.enter('192.0.2.10')); // proven: beyond the unproven share of 1
    expect(admission.counts()).toEqual({ inFlight: 2, unproven: 0, overLimit: 0 });
  });

  it('forgets a proven source after provenForMs, beyond maxProvenSources (the least recently authenticated), and once it goes over its failure limit', () => {
    const clock = { now: 0 };
    const admission = new Admission({ maxInFlightUnproven: 0, maxProvenSources: 2, provenForMs: 60_000, failures: 2, now: () => clock.now });
    const provenNow = (source: string) => {
      const entered = admission.enter(source);
      if (isRefusal(entered)) return false;
      entered.release();
      return true;
    };
    admission.succeeded('10.0.0.1');
    clock.now = 30_000;
    admission.succeeded('10.0.0.2');
    expect([provenNow('10.0.0.1'), provenNow('10.0.0.2')]).toEqual([true, true]);
    clock.now = 60_000; // 10.0.0.1 authenticated 60 s ago
    expect([provenNow('10.0.0.1'), provenNow('10.0.0.2')]).toEqual([false, true]);
    admission.succeeded('10.0.0.1');
    admission.succeeded('10.0.0.3'); // a third: 10.0.0.2 authenticated least recently
    expect([provenNow('10.0.0.1'), provenNow('10.0.0.2'), provenNow('10.0.0.3')]).toEqual([true, false, true]);
    admission.failed('10.0.0.3'); // one failure left: still proven
    expect(provenNow('10.0.0.3')).toBe(true);
    admission.failed('10.0.0.3'); // over its limit
    expect(provenNow('10.0.0.3')).toBe(false);
  });
});
