/** What rotate, revoke, decommission and status do (../commands/operate.ts defines them). */
import { randomUUID } from 'node:crypto';
import { humanDuration, requireDuration } from '../../core/duration.js';
import { describeError, RekeyError } from '../../core/errors.js';
import type { RunRecord, VersionRecord } from '../../core/model.js';
import { revokeTokensCommand } from '../../leaks/cli.js';
import { HEARTBEAT_STALE_MS, type LastHeartbeat } from '../../queue/heartbeats.js';
import type { Runtime } from '../../runtime.js';
import { ExitCode, type CliContext } from '../context.js';
import { nextPageCommand } from '../options.js';
import { formatStatus, secretStatus, statusWhere } from '../status.js';
import type { RotateOptions } from '../commands/operate.js';
import { rotateFleet } from '../fleet.js';
import { withRuntime } from '../with-runtime.js';

export async function rotate(ctx: CliContext, name: string, options: { wait?: boolean; timeout: string; json?: boolean }): Promise<void> {
  const timeoutMs = requireDuration(options.timeout, '--timeout');
  await withRuntime(ctx, async (runtime) => {
    await runtime.connect();
    const idempotencyKey = `manual:${randomUUID()}`;
    const result = await requestUntilAnswered(runtime, () => runtime.engine.requestRotation({ secret: name, trigger: 'manual', idempotencyKey }));
    if (result.status === 'stale') return; // manual requests are never stale
    const { run } = result;
    // A retry whose first try committed finds its own run: that is this request's, not another's.
    const status = run.idempotencyKey === idempotencyKey ? 'queued' : result.status;
    if (!options.json) ctx.out(`${status === 'queued' ? 'Queued' : 'Joined running'} rotation ${run.id} of ${name}.`);
    if (!options.wait) {
      if (options.json) ctx.out(JSON.stringify({ runId: run.id, status }));
      return;
    }
    const finished = await waitForRun(runtime, run, timeoutMs, options.json ? () => undefined : ctx.out);
    if (options.json) ctx.out(JSON.stringify({ runId: run.id, status: finished.status, error: finished.error }));
    else ctx.out(finished.status === 'succeeded' ? `Rotated ${name}.` : `Rotation ${finished.status}: ${finished.error ?? 'no error recorded'}`);
    if (finished.status !== 'succeeded') throw new ExitCode(1);
  });
}

/** How long `rekey rotate` keeps retrying a request whose connection broke mid-way (a failover, a cut connection). */
const REQUEST_RETRY_MS = 30_000;

/**
 * Whether `error` leaves it unknown if the request committed: its connection broke or its
 * server went away while a statement was out, or the server was briefly unable to take it (a
 * standby still read-only, a serialization failure). Not a refused connection (nothing was
 * sent: the person is told at once where PostgreSQL is not), nor one of rekey's own errors
 * (REKEY_ERR_NOT_QUEUED says the run is recorded).
 */
function brokeMidRequest(error: unknown): boolean {
  if (error instanceof RekeyError || !(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return /^(ECONNRESET|EPIPE|08...|57P0[1-3]|25006|40001|40P01)$/.test(code);
  return /^Connection terminated/.test(error.message);
}

/**
 * `request` until it answers, retried with backoff for up to {@link REQUEST_RETRY_MS} while it
 * fails with its connection broken mid-way. The request must be idempotent: a connection cut
 * after PostgreSQL committed the run, before the answer came back, fails a try whose work is
 * done, and only the same idempotency key makes the retry find that run instead of making a second.
 * @throws the last failure, once it is of another kind or the time is up.
 */
async function requestUntilAnswered<T>(runtime: Runtime, request: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + REQUEST_RETRY_MS;
  for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, 4000)) {
    try {
      return await request();
    } catch (error) {
      if (!brokeMidRequest(error) || Date.now() + delayMs > deadline) throw error;
      runtime.log.warn({ error: describeError(error), retryInMs: delayMs }, 'request failed; retrying with the same idempotency key');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** How many failed secrets a fleet's text output names. */
const FAILURES_SHOWN = 100;

/** A fleet rotation (../fleet.ts); exit 1 when any of its rotations did not succeed. */
export async function rotateMany(ctx: CliContext, options: RotateOptions): Promise<void> {
  const graceMs = options.grace === undefined ? undefined : requireDuration(options.grace, '--grace');
  await withRuntime(ctx, async (runtime) => {
    const selection = { all: options.all ?? false, ...(options.selector === undefined ? {} : { selector: options.selector }), ...(options.store === undefined ? {} : { store: options.store }), ...(options.issuer === undefined ? {} : { issuer: options.issuer }) };
    const result = await rotateFleet(runtime, selection, {
      ...(graceMs === undefined ? {} : { graceMs }),
      dryRun: options.dryRun ?? false,
      perStore: options.perStore,
      perTarget: options.perTarget,
      ...(options.storeRate === undefined ? {} : { storeRate: options.storeRate }),
      out: options.json ? () => undefined : ctx.out,
    });
    if (options.json) ctx.out(JSON.stringify(result));
    else if (options.dryRun) ctx.out('Dry run: nothing rotated.');
    else if (result.fleet) {
      ctx.out(`Fleet ${result.fleet}: ${result.done} rotated, ${result.failed} failed, in ${humanDuration(result.seconds * 1000)}.`);
      // Each failure by name with its code (never the error's text); --json lists every one.
      const shown = result.failures.slice(0, FAILURES_SHOWN);
      if (shown.length) ctx.out(`Failed:\n${shown.map((f) => `  ${f.secret}: ${f.status} ${f.code ?? 'no error code recorded'}${f.runId ? ` (run ${f.runId})` : ''}`).join('\n')}`);
      if (result.failures.length > shown.length) ctx.out(`  ... and ${result.failures.length - shown.length} more (--json lists every one; rekey list --status failing)`);
    }
    if (result.failed) throw new ExitCode(1);
  });
}

export async function revokeTokens(ctx: CliContext, json: boolean): Promise<void> {
  const allReported = await withRuntime(ctx, (runtime) => revokeTokensCommand(runtime, process.stdin, ctx.out, json));
  if (!allReported) throw new ExitCode(1);
}

export async function revoke(ctx: CliContext, name: string, version: number, json: boolean): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    await runtime.connect();
    const record = await runtime.engine.revoke(name, version);
    if (json) ctx.out(JSON.stringify({ outcome: record.outcome, versionId: record.versionId }));
    else ctx.out(`Version ${version} of ${name}: ${record.outcome}.`);
  });
}

export async function decommission(ctx: CliContext, name: string, options: { wait?: boolean; timeout: string; json?: boolean }): Promise<void> {
  const timeoutMs = requireDuration(options.timeout, '--timeout');
  await withRuntime(ctx, async (runtime) => {
    await runtime.connect();
    const versions = await runtime.engine.decommission(name);
    const numbers = versions.map((v) => `v${v.number}`).join(', ') || 'none';
    if (!options.json) ctx.out(`Decommissioning ${name}: retiring and revoking ${numbers}.`);
    const left = options.wait ? await waitForTakedown(runtime, versions, timeoutMs) : undefined;
    if (options.json) ctx.out(JSON.stringify({ secret: name, versions: versions.map((v) => v.number), ...(left ? { left } : {}) }));
    else if (left) ctx.out(left.length ? `Still live: ${left.join(', ')}.` : `Decommissioned ${name}: no key of it is live anywhere.`);
    if (left?.length) throw new ExitCode(1);
  });
}

export async function status(ctx: CliContext, name: string | undefined, options: { json?: boolean; versions: number; limit: number; after?: string }): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const redisUp = await runtime.connect().then(() => true, () => false);
    // One secret more than the page: whether there is a next one.
    const [rows, total] = await Promise.all([
      secretStatus(runtime, name, options.versions, redisUp, { after: options.after, limit: options.limit + 1 }),
      runtime.db.secret.count({ where: statusWhere(name) }),
    ]);
    if (name && !total) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${name}`);
    const statuses = rows.slice(0, options.limit);
    const next = rows.length > statuses.length ? statuses.at(-1)!.name : null;
    const more = next && `${total} secrets; next page: ${nextPageCommand(name ? `status ${name}` : 'status', next, options.limit)}`;
    if (options.json) {
      ctx.out(JSON.stringify(statuses, null, 2));
      if (more) process.stderr.write(`rekey: ${more}\n`); // stdout stays the page's JSON
    } else if (!statuses.length && options.after !== undefined && total) ctx.out(`No secrets after ${options.after} (${total} secrets in all).`); // past the last page: not an empty database
    else ctx.out(formatStatus(statuses) + (more ? `\n\n${more}` : ''));
  });
}

/** Waits until every version is revoked; returns those that are not (`v3 retired`) when time runs out. */
async function waitForTakedown(runtime: Runtime, versions: readonly VersionRecord[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await Promise.all(versions.map((v) => runtime.engine.deps.repo.getVersion(v.id)));
    const left = rows.filter((v) => v && v.state !== 'revoked').map((v) => `v${v!.number} ${v!.state}`);
    if (!left.length || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** How often `--wait` prints a progress line even when nothing changed (and reads the workers' heartbeats). */
const PROGRESS_EVERY_MS = 5000;

/**
 * Follows a run until it ends: a line whenever its step, attempt or error changes, and at
 * least every 5 s. A run no worker has picked up yet (no attempt) is shown as queued, with
 * what the workers' heartbeats say: none seen, none seen lately, or alive (busy).
 */
async function waitForRun(runtime: Runtime, run: RunRecord, timeoutMs: number, progress: (line: string) => void): Promise<RunRecord> {
  const started = Date.now();
  let last = '';
  let printedAt = 0;
  let workers: WorkersNote = { state: 'unknown', text: '' };
  let workersAt = -Infinity;
  for (;;) {
    const current = (await runtime.engine.deps.repo.getRun(run.id))!;
    const queued = current.status === 'running' && current.attempts === 0;
    if (queued && Date.now() - workersAt >= PROGRESS_EVERY_MS) {
      workers = workersNote(await runtime.heartbeats.last().catch(() => null));
      workersAt = Date.now();
    }
    const step = `${current.step}, attempt ${current.attempts}${current.error && current.status === 'running' ? `, last error: ${current.error}` : ''}`;
    const state = queued ? `queued ${workers.state}` : step;
    const line = queued ? `queued: no worker has picked it up yet${workers.text ? ` (${workers.text})` : ''}` : step;
    if (current.status === 'running' && (state !== last || Date.now() - printedAt >= PROGRESS_EVERY_MS)) {
      progress(`  ${humanDuration(Date.now() - started).padStart(7)}  ${line}`);
      last = state;
      printedAt = Date.now();
    }
    if (current.status !== 'running') return current;
    if (Date.now() - started > timeoutMs) {
      throw new RekeyError(
        'REKEY_ERR_TIMEOUT',
        queued
          ? `run ${run.id} still queued after ${humanDuration(timeoutMs)}: no worker picked it up; ${workers.state === 'alive' ? `${workers.text}, so the workers are busy or cannot run it` : workers.text || 'is `rekey worker` running against this REDIS_URL and REKEY_QUEUE_PREFIX?'}`
          : `run ${run.id} still at ${current.step} (attempt ${current.attempts}) after ${humanDuration(timeoutMs)}${current.error ? `; last error: ${current.error}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface WorkersNote {
  /** What changed, for deciding to print: the ages in `text` change every time. */
  state: 'none' | 'gone' | 'alive' | 'unknown';
  text: string;
}

/** What the last heartbeat (undefined: none in a day; null: unreadable) says about the workers. */
function workersNote(last: LastHeartbeat | undefined | null): WorkersNote {
  if (last === null) return { state: 'unknown', text: '' };
  if (!last) return { state: 'none', text: 'no worker has sent a heartbeat to this REDIS_URL and REKEY_QUEUE_PREFIX: is `rekey worker` running against them?' };
  if (last.ageMs > HEARTBEAT_STALE_MS) return { state: 'gone', text: `no worker seen for ${humanDuration(last.ageMs)} (the last was ${last.worker}): is \`rekey worker\` running?` };
  return { state: 'alive', text: `a worker is alive: ${last.worker} seen ${humanDuration(last.ageMs)} ago` };
}
