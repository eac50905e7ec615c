/**
 * bench/usage's gateway-latency phase: how much the stick tables add to a request, told apart
 * from what the usage check's reads add while they run. A probe process of its own (probe-child)
 * sends raw keep-alive requests alternating between three HAProxys under the same background
 * traffic: with stick tables (A), without (B), and a second one without (B', the A/A floor).
 * Rounds of `perRound` requests each run in blocks of `block` rounds, blocks alternating between
 * the usage check paused (the tables' own cost per request) and running at its window (with
 * the `show table` reads). Per condition: per round the p50/p99 of each gateway, summarized over
 * the rounds as the median A-B difference with its p10-p90 spread beside B'-B; the share of A's
 * and B''s requests slower than B's p99 (1 % when they match it); and each HAProxy's
 * CPU per request (µs, /proc/<pid>/stat over `show info` CumReq), which the probe's own noise
 * cannot move.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { percentile } from '../support/environment.js';
import type { HaproxyMeter } from './haproxy-cpu.js';

export interface LatencyCondition {
  rounds: number;
  /** p50/p99/max over every sample, per gateway, ms. */
  withStickTables: Stats;
  without: Stats;
  withoutAgain: Stats;
  /** Median over the rounds of the per-round difference (A-B), with p10 and p90, ms. */
  addedP50: Spread;
  addedP99: Spread;
  /** The same for B'-B: what difference two identical gateways show. */
  noiseP99: Spread;
  /**
   * Share of A's and of B''s requests (%) slower than B's p99 over the condition's rounds: 1 % when
   * they match B. A tail both can be read against, finer than a p99 difference (its standard error
   * over 20,000 samples is about 0.07 points).
   */
  overBareP99: { withStickTables: number; withoutAgain: number };
  /** HAProxy CPU per request, µs: each gateway, A-B and B'-B. */
  cpuUsPerRequest: { withStickTables: number; without: number; withoutAgain: number; added: number; noise: number };
}

interface Stats {
  p50: number;
  p99: number;
  max: number;
}
interface Spread {
  median: number;
  p10: number;
  p90: number;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const stats = (xs: number[]): Stats => {
  const s = sorted(xs);
  return { p50: round(percentile(s, 50)), p99: round(percentile(s, 99)), max: round(s.at(-1) ?? NaN) };
};

export async function latencyPhase(o: {
  gateways: Array<{ url: string; header: string }>;
  meters: HaproxyMeter[];
  key: string;
  rounds: number;
  perRound: number;
  block: number;
  /** Pauses (true) or resumes the usage check; resolves once no check is under way. */
  collect: (on: boolean) => Promise<void>;
}): Promise<{ paused: LatencyCondition; collecting: LatencyCondition }> {
  const child = fork(fileURLToPath(new URL('./probe-child.ts', import.meta.url)), { execArgv: ['--import', 'tsx'] });
  const probe = (rounds: number) =>
    new Promise<number[][][]>((resolve, reject) => {
      child.once('message', (m: { samples?: number[][][]; error?: string }) => (m.samples ? resolve(m.samples) : reject(new Error(m.error))));
      child.send({ op: 'rounds', gateways: o.gateways, key: o.key, rounds, perRound: o.perRound });
    });
  const conditions = [false, true].map(() => ({ samples: o.gateways.map(() => [] as number[][]), cpuMs: o.gateways.map(() => 0), requests: o.gateways.map(() => 0) }));
  try {
    for (let done = 0, b = 0; done < o.rounds; done += o.block, b++) {
      const on = b % 2 === 1;
      await o.collect(on);
      const c = conditions[Number(on)]!;
      const cpu0 = o.meters.map((m) => m.cpuMs());
      const requests0 = await Promise.all(o.meters.map((m) => m.requests()));
      const samples = await probe(o.block);
      const requests = await Promise.all(o.meters.map((m) => m.requests()));
      o.meters.forEach((m, g) => {
        c.cpuMs[g]! += m.cpuMs() - cpu0[g]!;
        c.requests[g]! += requests[g]! - requests0[g]!;
        c.samples[g]!.push(...samples[g]!);
      });
    }
  } finally {
    child.disconnect();
    await o.collect(true);
  }
  const [paused, collecting] = conditions.map((c) => {
    const perRound = c.samples;
    const roundly = (q: number, a: number, b: number): Spread => {
      const diffs = sorted(perRound[a]!.map((xs, r) => percentile(sorted(xs), q) - percentile(sorted(perRound[b]![r]!), q)));
      return { median: round(percentile(diffs, 50)), p10: round(percentile(diffs, 10)), p90: round(percentile(diffs, 90)) };
    };
    const bareP99 = percentile(sorted(perRound[1]!.flat()), 99);
    const over = (g: number) => round((100 * perRound[g]!.flat().filter((ms) => ms > bareP99).length) / perRound[g]!.flat().length, 2);
    const us = c.cpuMs.map((ms, g) => (ms * 1000) / Math.max(1, c.requests[g]!));
    return {
      rounds: perRound[0]!.length,
      withStickTables: stats(perRound[0]!.flat()),
      without: stats(perRound[1]!.flat()),
      withoutAgain: stats(perRound[2]!.flat()),
      addedP50: roundly(50, 0, 1),
      addedP99: roundly(99, 0, 1),
      noiseP99: roundly(99, 2, 1),
      overBareP99: { withStickTables: over(0), withoutAgain: over(2) },
      cpuUsPerRequest: { withStickTables: round(us[0]!, 1), without: round(us[1]!, 1), withoutAgain: round(us[2]!, 1), added: round(us[0]! - us[1]!, 1), noise: round(us[2]! - us[1]!, 1) },
    };
  });
  return { paused: paused!, collecting: collecting! };
}
