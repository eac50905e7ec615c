/**
 * Rotations requested continuously while something fails underneath (a Redis or PostgreSQL
 * failover): one loop per secret asks for a manual rotation, waits for its run to leave
 * `running` (polling PostgreSQL, which stays up), records when, and asks again. A request
 * that fails is asked again with the same idempotency key, as a client of the API's
 * `Idempotency-Key` does: a failure can come after the run's commit (the connection cut while
 * the commit was under way, or the queue away after it), and the retry then joins that run
 * instead of making a second one. Used by the high-availability tests and bench/failover to
 * measure the processing gap and to check that every requested run completed exactly once.
 */
import { randomUUID } from 'node:crypto';
import type { Harness } from './harness.js';

const RUN_HANG_GUARD_MS = 90_000;
/**
 * How often each loop reads its run: the completion times (and so the gaps) are this precise.
 * Polling faster competes with the workers for the same pool and event loop: at 25 ms, four
 * loops made five times the queries of the rotations they watched.
 */
const POLL_MS = 100;

class HangError extends Error {}

export interface Completion {
  secret: string;
  runId: string;
  status: string;
  /** performance.now() when the poller saw the run finish. */
  at: number;
}

export class RotationLoad {
  readonly requested = new Map<string, string>();
  readonly completions: Completion[] = [];
  /** Requests that failed (the caller saw an error: the database was away), newest last. */
  readonly errors: string[] = [];
  private stopping = false;
  private readonly keyPrefix = `load:${randomUUID()}`;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly h: Pick<Harness, 'runtime'>,
    readonly secrets: readonly string[],
  ) {
    this.loops = secrets.map((secret) => this.loop(secret));
  }

  private async loop(secret: string): Promise<void> {
    let request = 0;
    // Failed tries of the current request in a row. After stop(), a request whose last try failed is
    // tried again (a while) so that a run it made is named.
    let unanswered = 0;
    while (!this.stopping || (unanswered > 0 && unanswered < 20)) {
      try {
        // During a Redis failover the enqueue waits for the new primary (long-lived connection).
        const result = await this.h.runtime.engine.requestRotation({ secret, trigger: 'manual', idempotencyKey: `${this.keyPrefix}:${secret}:${request}` });
        if (result.status === 'stale') throw new Error('manual rotation reported stale');
        request++;
        unanswered = 0;
        this.requested.set(result.run.id, secret);
        await this.finished(secret, result.run.id);
      } catch (error) {
        if (!(error instanceof HangError)) unanswered++;
        this.errors.push(`${secret}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Polls the run until it leaves `running` and records when. */
  private async finished(secret: string, runId: string): Promise<void> {
    const repo = this.h.runtime.engine.deps.repo;
    // A hang guard, not a timing bound: a run that never finishes is reported, not waited for forever.
    for (const deadline = Date.now() + RUN_HANG_GUARD_MS; ; ) {
      if (Date.now() > deadline) throw new HangError(`run ${runId} not finished after ${RUN_HANG_GUARD_MS} ms`);
      const run = await repo.getRun(runId).catch(() => undefined);
      if (run && run.status !== 'running') {
        this.completions.push({ secret, runId: run.id, status: run.status, at: performance.now() });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Completions seen after `since` (performance.now()), per secret at least `each`. */
  completedAfter(since: number, each: number): boolean {
    return this.secrets.every((secret) => this.completions.filter((c) => c.secret === secret && c.at > since).length >= each);
  }

  /** The longest time without any run finishing, between the first and the last completion. */
  gapMs(): number {
    const times = this.completions.map((c) => c.at).sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
    return gap;
  }

  /** Where the loops stand, for a failure message: runs requested and not seen finished, request errors. */
  describe(): string {
    const done = new Set(this.completions.map((c) => c.runId));
    const open = [...this.requested].filter(([id]) => !done.has(id)).map(([id, secret]) => `${secret}:${id}`);
    return JSON.stringify({ completions: this.completions.length, open, refused: this.errors.length, errors: [...this.errors.slice(0, 3), ...this.errors.slice(3).slice(-3)] });
  }

  /** Stops asking and waits for the runs under way to finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /**
   * Exactly once, from PostgreSQL: every requested run succeeded, the secrets' runs are
   * exactly the requested ones, each rotation left one version (numbered 1..n without a gap
   * or a double) and each secret has exactly one current version. Returns the problems.
   */
  async problems(): Promise<string[]> {
    const db = this.h.runtime.db;
    // A request refused while the database was away (`errors`) was repeated with its key: a run it
    // made after all was joined then, so a run of these secrets that no answer named is a problem.
    const problems: string[] = [];
    for (const completion of this.completions) if (completion.status !== 'succeeded') problems.push(`run ${completion.runId} of ${completion.secret} ended ${completion.status}`);
    for (const secret of this.secrets) {
      const all = await db.run.findMany({ where: { secret: { name: secret } }, select: { id: true, kind: true, status: true } });
      for (const run of all) if (run.kind !== 'rotation' && (run.status === 'failed' || run.status === 'rolled_back')) problems.push(`${secret}: ${run.kind} ${run.id} ${run.status}`);
      const runs = all.filter((r) => r.kind === 'rotation');
      const mine = [...this.requested].filter(([, s]) => s === secret).map(([id]) => id);
      if (runs.length !== mine.length || runs.some((r) => !this.requested.has(r.id))) problems.push(`${secret}: ${runs.length} runs in PostgreSQL, ${mine.length} requested`);
      for (const run of runs) if (run.status !== 'succeeded') problems.push(`${secret}: run ${run.id} is ${run.status}`);
      const versions = await db.version.findMany({ where: { secret: { name: secret } }, select: { number: true, state: true }, orderBy: { number: 'asc' } });
      if (versions.length !== runs.length) problems.push(`${secret}: ${versions.length} versions for ${runs.length} rotations`);
      if (versions.some((v, i) => v.number !== i + 1)) problems.push(`${secret}: version numbers ${versions.map((v) => v.number).join(',')}`);
      const current = versions.filter((v) => v.state === 'current').length;
      if (current !== 1) problems.push(`${secret}: ${current} current versions`);
    }
    return problems;
  }
}
