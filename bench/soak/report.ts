/** The soak's figures: gathered from the database and the loops, printed as a table. */
import { percentile } from '../support/environment.js';
import type { LeakSender } from './leaks.js';
import { FAULT_KINDS, INVARIANTS, INVARIANT_NAMES, type SoakState } from './state.js';

export interface SoakSummary {
  secrets: number;
  chaosSeconds: number;
  totalSeconds: number;
  settled: boolean;
  rotations: { succeeded: number; rolledBack: number; failed: number; running: number; byTrigger: Record<string, number> };
  retirements: number;
  revocations: number;
  triggers: { joined: number; stale: number };
  leaks: {
    reported: number;
    blocked: number;
    notBlocked: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    byOutcome: Record<string, number>;
    /** p50 leak-to-blocked per outcome: revoking (previous), blocking (block-first), rotating (rotate-then-revoke). */
    p50MsByOutcome: Record<string, number>;
    duplicatesAnswered: number;
    retriedDeliveries: number;
  };
  probes: SoakState['probes'];
  /** Runs past their budget while their job waited in line (a backlog, not counted against invariant 5). */
  queuedPastBudget: SoakState['queued'];
  valuesChecked: number;
  faults: Record<string, number>;
  violations: Record<string, number>;
}

export async function summarize(
  s: SoakState,
  extra: { chaosSeconds: number; settled: boolean; totalSeconds: number; leaks: LeakSender; secrets: number },
): Promise<SoakSummary> {
  const { rows: runs } = await s.pool.query<{ kind: string; status: string; trigger: string; n: number }>(
    `SELECT kind, status, trigger, count(*)::int AS n FROM runs GROUP BY 1, 2, 3`,
  );
  const sum = (f: (r: (typeof runs)[number]) => boolean) => runs.filter(f).reduce((a, r) => a + r.n, 0);
  const byTrigger: Record<string, number> = {};
  for (const r of runs) if (r.kind === 'rotation' && r.status === 'succeeded') byTrigger[r.trigger] = (byTrigger[r.trigger] ?? 0) + r.n;
  const { rows: triggers } = await s.pool.query<{ action: string; n: number }>(
    `SELECT action, count(*)::int AS n FROM audit_events WHERE action IN ('trigger.joined', 'trigger.stale') GROUP BY 1`,
  );
  const blocked = s.leaks.flatMap((l) => (l.blockedMs === undefined ? [] : [l.blockedMs])).sort((a, b) => a - b);
  const byOutcome: Record<string, number> = {};
  for (const l of s.leaks) byOutcome[l.outcome] = (byOutcome[l.outcome] ?? 0) + 1;
  const p50MsByOutcome: Record<string, number> = {};
  for (const outcome of Object.keys(byOutcome)) {
    p50MsByOutcome[outcome] = percentile(
      s.leaks.flatMap((l) => (l.outcome === outcome && l.blockedMs !== undefined ? [l.blockedMs] : [])).sort((a, b) => a - b),
      50,
    );
  }
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, s.faults.filter((f) => f.kind === k).length]));
  const violations = Object.fromEntries(INVARIANTS.map((i) => [String(i), s.violations.filter((v) => v.invariant === i).length]));
  return {
    secrets: extra.secrets,
    chaosSeconds: Math.round(extra.chaosSeconds),
    totalSeconds: extra.totalSeconds,
    settled: extra.settled,
    rotations: {
      succeeded: sum((r) => r.kind === 'rotation' && r.status === 'succeeded'),
      rolledBack: sum((r) => r.kind === 'rotation' && r.status === 'rolled_back'),
      failed: sum((r) => r.kind === 'rotation' && r.status === 'failed'),
      running: sum((r) => r.status === 'running'),
      byTrigger,
    },
    retirements: sum((r) => r.kind === 'retirement' && r.status === 'succeeded'),
    revocations: sum((r) => r.kind === 'revocation' && r.status === 'succeeded'),
    triggers: {
      joined: triggers.find((t) => t.action === 'trigger.joined')?.n ?? 0,
      stale: triggers.find((t) => t.action === 'trigger.stale')?.n ?? 0,
    },
    leaks: {
      reported: s.leaks.length,
      blocked: blocked.length,
      notBlocked: s.leaks.length - blocked.length,
      p50Ms: percentile(blocked, 50),
      p99Ms: percentile(blocked, 99),
      maxMs: blocked.at(-1) ?? NaN,
      byOutcome,
      p50MsByOutcome,
      duplicatesAnswered: extra.leaks.duplicatesAnswered,
      retriedDeliveries: s.leaks.filter((l) => l.attempts > 1).length,
    },
    probes: s.probes,
    queuedPastBudget: s.queued,
    valuesChecked: s.values.size,
    faults,
    violations,
  };
}

export function printReport(s: SoakState, f: SoakSummary): void {
  const row = (label: string, value: string | number) => console.log(`  ${label.padEnd(52)} ${value}`);
  console.log(`\nsoak: ${f.secrets} secrets, ${f.chaosSeconds} s of faults, ${f.totalSeconds} s in all${f.settled ? '' : ' (DID NOT SETTLE)'}`);
  console.log('\n  rotations');
  row('completed (promoted)', f.rotations.succeeded);
  row('  of which by trigger', Object.entries(f.rotations.byTrigger).map(([k, v]) => `${k} ${v}`).join(', '));
  row('rolled back', f.rotations.rolledBack);
  row('abandoned (failed)', f.rotations.failed);
  row('previous versions retired / leaked versions revoked', `${f.retirements} / ${f.revocations}`);
  row('cron triggers joined to a running rotation / stale', `${f.triggers.joined} / ${f.triggers.stale}`);
  console.log('\n  leaks (report accepted -> key refused by HAProxy)');
  row('reported', `${f.leaks.reported} (${Object.entries(f.leaks.byOutcome).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  row('blocked', `${f.leaks.blocked}, not blocked within 60 s: ${f.leaks.notBlocked}`);
  row('leak-to-blocked p50 / p99 / max', `${f.leaks.p50Ms} / ${f.leaks.p99Ms} / ${f.leaks.maxMs} ms`);
  row('  p50 by outcome', Object.entries(f.leaks.p50MsByOutcome).map(([k, v]) => `${k} ${v} ms`).join(', '));
  row('redelivered reports answered as duplicates', f.leaks.duplicatesAnswered);
  row('reports retried because the server was down', f.leaks.retriedDeliveries);
  console.log('\n  checker');
  row('gateway probes accepted / refused as expected', `${f.probes.accepted} / ${f.probes.expectedRefused}`);
  row('refusals undecided (PostgreSQL down at the check)', f.probes.undecided);
  row('probe errors / skipped', `${f.probes.errors} / ${f.probes.skipped}`);
  row('distinct values read (searched for at the end)', f.valuesChecked);
  row('runs past their budget waiting in line (not stuck)', `${f.queuedPastBudget.runs} (longest ${f.queuedPastBudget.longestSeconds} s, line of ${f.queuedPastBudget.longestLine} jobs)`);
  console.log('\n  faults injected');
  for (const [kind, n] of Object.entries(f.faults)) row(kind, n);
  console.log('\n  violations');
  for (const [inv, n] of Object.entries(f.violations)) row(`${inv}: ${INVARIANT_NAMES[inv]}`, n);
  if (s.violations.length) {
    console.log('\n  violation details (first 30)');
    for (const v of s.violations.slice(0, 30)) console.log(`  - [${v.invariant}] ${v.detail}`);
  }
  console.log(`\n  ${s.violations.length ? `FAILED: ${s.violations.length} violation(s)` : 'no violations'}\n`);
}
