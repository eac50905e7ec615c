/**
 * The continuous checks, running beside the workers for the whole soak:
 *  - gateway probes (invariant 2): a random secret's current (or previous, or pending)
 *    key is read just in time from the local store and sent through HAProxy. A refusal
 *    is a violation only if the version should have been accepted both before and after
 *    the probe: current, or previous with its grace still running (less the one second
 *    early a retirement may start), and never reported leaked.
 *  - database watch: exactly one current version per secret once it has one (4; none is
 *    allowed after a leak of the current version), and no run running past its retry
 *    budget plus the fault time it lived through (5), unless its job is waiting in line in
 *    its queue (a backlog, not a stuck run: counted apart, and the settling that follows
 *    must still see every run finish).
 * Reads go through a pg pool of the soak's own and tolerate PostgreSQL being down.
 */
import { request } from 'node:http';
import type { SecretValue } from '../../src/core/secret-value.js';
import { jobId } from '../../src/queue/names.js';
import { type SoakState, sleep } from './state.js';

interface VersionRow {
  id: string;
  number: number;
  state: string;
  grace_ends_at: Date | null;
  compromised_at: Date | null;
  store_version_id: string | null;
}

/** How early (ms) before graceEndsAt a retirement may legitimately start (core/takedown.ts). */
const EARLY_RETIREMENT_MS = 1000;

export function shouldAccept(v: Pick<VersionRow, 'state' | 'grace_ends_at' | 'compromised_at'>, at: number): boolean {
  if (v.compromised_at) return false;
  if (v.state === 'current') return true;
  return v.state === 'previous' && !!v.grace_ends_at && v.grace_ends_at.getTime() - EARLY_RETIREMENT_MS > at;
}

/** GET through the gateway with the key; resolves with the status (0 when the request failed). */
export function probe(url: string, header: string, value: SecretValue, timeoutMs = 3000): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', headers: { [header]: value.reveal() }, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

export class Checker {
  private readonly loops: Array<Promise<void>> = [];

  constructor(
    private readonly s: SoakState,
    private readonly gateway: { url: string; header: string },
  ) {}

  start(probers = 2): void {
    for (let i = 0; i < probers; i++) this.loops.push(this.probeLoop());
    this.loops.push(this.watchLoop());
  }

  async stop(): Promise<void> {
    await Promise.all(this.loops);
  }

  /** Reads a version's value from its store (cached: a version's value never changes). */
  async value(secret: string, v: Pick<VersionRow, 'id' | 'store_version_id'>): Promise<SecretValue | undefined> {
    const known = this.s.values.get(v.id);
    if (known) return known;
    if (!v.store_version_id) return undefined;
    try {
      const { store } = await this.s.runtime.resolver.resolve(secret);
      const value = await store.read({ storeVersionId: v.store_version_id }, { signal: AbortSignal.timeout(3000) });
      this.s.values.set(v.id, value);
      return value;
    } catch {
      return undefined; // destroyed meanwhile, or PostgreSQL down
    }
  }

  async versions(secret: string, states = ['current', 'previous', 'pending']): Promise<VersionRow[] | undefined> {
    try {
      const { rows } = await this.s.pool.query<VersionRow>(
        `SELECT v.id, v.number, v.state, v.grace_ends_at, v.compromised_at, v.store_version_id
           FROM versions v JOIN secrets s ON s.id = v.secret_id
          WHERE s.name = $1 AND v.state = ANY($2::"VersionState"[])`,
        [secret, states],
      );
      return rows;
    } catch {
      return undefined;
    }
  }

  async version(id: string): Promise<VersionRow | undefined> {
    try {
      const { rows } = await this.s.pool.query<VersionRow>(
        'SELECT id, number, state, grace_ends_at, compromised_at, store_version_id FROM versions WHERE id = $1',
        [id],
      );
      return rows[0];
    } catch {
      return undefined;
    }
  }

  private async probeLoop(): Promise<void> {
    const { secrets } = this.s.config;
    while (!this.s.stopping) {
      const secret = secrets[Math.floor(Math.random() * secrets.length)]!;
      await this.probeOnce(secret).catch((error: unknown) => this.s.note(`probe error: ${(error as Error).message}`));
      await sleep(10);
    }
  }

  async probeOnce(secret: string): Promise<void> {
    const before = await this.versions(secret);
    if (!before?.length) return void (this.s.probes.skipped += 1);
    const roll = Math.random();
    const pick =
      (roll < 0.1 ? before.find((v) => v.state === 'pending') : roll < 0.35 ? before.find((v) => v.state === 'previous') : undefined) ??
      before.find((v) => v.state === 'current');
    if (!pick) return void (this.s.probes.skipped += 1);
    const value = await this.value(secret, pick);
    if (!value) return void (this.s.probes.skipped += 1);
    const sentAt = Date.now();
    const status = await probe(this.gateway.url, this.gateway.header, value);
    const doneAt = Date.now();
    if (status === 200) return void (this.s.probes.accepted += 1);
    if (status !== 401) return void (this.s.probes.errors += 1);
    this.s.probes.refused += 1;
    const after = await this.version(pick.id);
    if (!after) return void (this.s.probes.undecided += 1); // cannot tell: PostgreSQL is down
    if (shouldAccept(pick, doneAt) && shouldAccept(after, doneAt)) {
      this.s.violate(
        2,
        `${secret} v${pick.number} (${pick.state} before, ${after.state} after${after.grace_ends_at ? `, grace ends ${after.grace_ends_at.toISOString()}` : ''}) refused by HAProxy at ${new Date(sentAt).toISOString()}`,
        `${pick.id}`,
      );
    } else {
      this.s.probes.expectedRefused += 1;
    }
  }

  private async watchLoop(): Promise<void> {
    while (!this.s.stopping) {
      await this.watchOnce().catch((error: unknown) => this.s.note(`watch error: ${(error as Error).message}`));
      await sleep(500);
    }
  }

  /** Per-run budget: every attempt's provider calls at their timeout, the backoffs, a lost lock and a reconcile. */
  runBudgetMs(): number {
    const c = this.s.config;
    const callsPerAttempt = 8;
    let backoff = 0;
    for (let i = 0; i < c.attempts - 1; i++) backoff += c.backoffMs * 2 ** i;
    return c.attempts * callsPerAttempt * c.timeoutMs + backoff + 2 * c.lockDurationMs + c.reconcileMs;
  }

  async watchOnce(): Promise<void> {
    const { rows: counts } = await this.s.pool.query<{ name: string; currents: number; last_leaked: boolean | null; last_version: string | null }>(`
      SELECT s.name,
             (SELECT count(*)::int FROM versions v WHERE v.secret_id = s.id AND v.state = 'current') AS currents,
             last.compromised_at IS NOT NULL AS last_leaked, last.id AS last_version
        FROM secrets s
        LEFT JOIN LATERAL (SELECT id, compromised_at FROM versions v WHERE v.secret_id = s.id AND v.promoted_at IS NOT NULL
                            ORDER BY v.promoted_at DESC LIMIT 1) last ON true
       WHERE s.last_promoted_at IS NOT NULL AND s.removed_at IS NULL`);
    for (const row of counts) {
      if (row.currents > 1) this.s.violate(4, `${row.name} has ${row.currents} current versions`, `${row.name}:many`);
      if (row.currents === 0 && !row.last_leaked) this.s.violate(4, `${row.name} has no current version and its last one was not leaked`, `${row.name}:${row.last_version}`);
    }
    const now = Date.now();
    const budget = this.runBudgetMs();
    const { rows: runs } = await this.s.pool.query<OpenRun & { step: string; started_at: Date; attempts: number; error: string | null; name: string }>(
      `SELECT r.id, r.kind, r.version_id, r.step, r.started_at, r.attempts, r.error, s.name FROM runs r JOIN secrets s ON s.id = r.secret_id
        WHERE r.status = 'running' AND r.started_at < $1`,
      [new Date(now - budget)],
    );
    for (const run of runs) {
      const allowed = budget + this.s.faultTimeBetween(run.started_at.getTime(), now, 2 * this.s.config.lockDurationMs);
      if (now - run.started_at.getTime() > allowed) {
        const line = await this.inLine(run);
        if (line !== undefined) {
          this.s.queuedPastBudget(run.id, (now - run.started_at.getTime()) / 1000, line);
          continue;
        }
        this.s.violate(
          5,
          `${run.kind} run ${run.id} of ${run.name} running for ${Math.round((now - run.started_at.getTime()) / 1000)} s (budget ${Math.round(allowed / 1000)} s with faults), at ${run.step}, attempt ${run.attempts}, last error: ${run.error ?? '-'}`,
          run.id,
        );
      }
    }
  }

  /** How many jobs wait in the run's queue when the run's own job is one of them (in line, not stuck); undefined otherwise. */
  private async inLine(run: OpenRun): Promise<number | undefined> {
    const { rotations, emergencies, revocations, retirements } = this.s.runtime.queues.queues;
    const jobs =
      run.kind === 'retirement' ? [[retirements, jobId.retire(run.version_id ?? '')] as const]
      : run.kind === 'revocation' ? [[revocations, jobId.revoke(run.version_id ?? '')] as const]
      : [[rotations, jobId.run(run.id)] as const, [emergencies, jobId.run(run.id)] as const];
    for (const [queue, id] of jobs) {
      const state = await (await queue.getJob(id))?.getState();
      if (state === 'waiting' || state === 'prioritized') return queue.getJobCountByTypes('waiting', 'prioritized');
    }
    return undefined;
  }
}

interface OpenRun {
  id: string;
  kind: string;
  version_id: string | null;
}
