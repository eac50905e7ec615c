/** What the soak's loops share: violations, values seen, faults, leak samples, counters. */
import type { Pool } from 'pg';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { Runtime } from '../../src/runtime.js';

/**
 * DESIGN.md's invariants by number, plus `R`: a revoked, failed or unknown key still
 * accepted at the gateway, and `crash`: a rekey process that exited without being killed.
 */
export type Invariant = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 'R' | 'crash';
export const INVARIANTS: readonly Invariant[] = [1, 2, 3, 4, 5, 6, 7, 'R', 'crash'];
export const INVARIANT_NAMES: Record<string, string> = {
  1: 'no plaintext in PostgreSQL, Redis, logs, metrics',
  2: 'a valid key is never refused at the gateway',
  3: 'revoked only after the successor was verified',
  4: 'exactly one current version',
  5: 'no run stuck past its retry budget',
  6: 'one run per trigger',
  7: 'audit chain verifies, every change audited',
  R: 'a revoked or unknown key is not accepted',
  crash: 'no rekey process exits on its own',
};

export type FaultKind = 'kill-worker' | 'stall-worker' | 'kill-server' | 'redis-restart' | 'redis-failover' | 'postgres-restart' | 'runtime-api-refused' | 'runtime-api-slow';
export const FAULT_KINDS: readonly FaultKind[] = ['kill-worker', 'stall-worker', 'kill-server', 'redis-restart', 'redis-failover', 'postgres-restart', 'runtime-api-refused', 'runtime-api-slow'];

export interface Fault {
  kind: FaultKind;
  start: number;
  end: number | undefined;
  detail: string;
}

export interface LeakSample {
  secret: string;
  version: number;
  was: string;
  outcome: string;
  /** Report accepted (200) -> the key refused by HAProxy; undefined when never seen refused. */
  blockedMs: number | undefined;
  /** POST attempts before the server answered (it may have been down). */
  attempts: number;
  duplicateChecked: boolean;
}

export interface Violation {
  invariant: Invariant;
  at: number;
  detail: string;
}

export interface SoakConfig {
  secrets: string[];
  graceMs: number;
  timeoutMs: number;
  attempts: number;
  backoffMs: number;
  leakDeadlineMs: number;
  lockDurationMs: number;
  reconcileMs: number;
}

export class SoakState {
  readonly violations: Violation[] = [];
  private readonly reported = new Set<string>();
  /** Every value the checker read, by version id: searched for everywhere at the end. */
  readonly values = new Map<string, SecretValue>();
  readonly faults: Fault[] = [];
  readonly leaks: LeakSample[] = [];
  /** Probes; a refusal is expected, a violation, or undecided (PostgreSQL down when checked). */
  readonly probes = { accepted: 0, refused: 0, expectedRefused: 0, undecided: 0, errors: 0, skipped: 0 };
  readonly started = Date.now();
  /** Runs found past their budget while their job waited in line in its queue: a backlog, not a stuck run. */
  readonly queued = { runs: 0, longestSeconds: 0, longestLine: 0 };
  private readonly queuedRuns = new Set<string>();
  stopping = false;

  constructor(
    readonly config: SoakConfig,
    readonly pool: Pool,
    readonly runtime: Runtime,
    readonly verbose: boolean,
  ) {}

  /** Records a violation once per key (the same stuck run is reported once, not every second). */
  violate(invariant: Invariant, detail: string, key = detail): void {
    if (this.reported.has(`${invariant}:${key}`)) return;
    this.reported.add(`${invariant}:${key}`);
    this.violations.push({ invariant, at: Date.now(), detail });
    console.log(`  ! [${((Date.now() - this.started) / 1000).toFixed(1)}s] invariant ${invariant}: ${detail}`);
  }

  /** Counts a run found past its budget while waiting in a line of `line` jobs (once per run; the longest wait and line kept). */
  queuedPastBudget(runId: string, seconds: number, line: number): void {
    if (!this.queuedRuns.has(runId)) this.queued.runs += 1;
    this.queuedRuns.add(runId);
    this.queued.longestSeconds = Math.max(this.queued.longestSeconds, Math.round(seconds));
    this.queued.longestLine = Math.max(this.queued.longestLine, line);
  }

  note(text: string): void {
    if (this.verbose) console.log(`    [${((Date.now() - this.started) / 1000).toFixed(1)}s] ${text}`);
  }

  /** Milliseconds of fault time overlapping [from, to], plus a recovery allowance per fault. */
  faultTimeBetween(from: number, to: number, recoveryMs: number): number {
    let total = 0;
    for (const f of this.faults) {
      const end = f.end ?? to;
      const overlap = Math.min(end, to) - Math.max(f.start, from);
      if (overlap > -recoveryMs) total += Math.max(0, overlap) + recoveryMs;
    }
    return total;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
