/**
 * Fleet rotation (`rekey rotate --all | --selector GLOB | --store NAME | --issuer NAME`): this
 * command selects the secrets, then requests their rotations a few at a time, so that at most
 * `perStore` run at once per store instance and `perTarget` per target instance (counting every
 * rotation running there, the fleet's or not), and at most `storeRate` start per second per store
 * instance (every fleet command at once: see claimSlots); it prints progress until every one has finished. The runs are ordinary rotations on the rotations queue: leak takedowns and emergency
 * rotations have their own queue and workers, and the fleet never puts more than its limits'
 * worth of work in front of anything.
 *
 * Resumable: the fleet is recorded in the audit log (`fleet.started`, `fleet.resumed`,
 * `fleet.finished`) and each of its runs has the idempotency key `fleet:<id>:<secret>`, so running
 * the same command again while a fleet of the same selection is unfinished continues it (a secret
 * whose run exists, or whose request joined a rotation already running, is not requested again),
 * unless that fleet was started more than FLEET_RESUMABLE_MS ago; once it has finished, the
 * command starts a new one.
 */
import { randomUUID } from 'node:crypto';
import { formatDuration, humanDuration } from '../core/duration.js';
import { describeError, RekeyError } from '../core/errors.js';
import { canonicalJson } from '../config/load.js';
import { globRegExp } from '../api/scopes.js';
import type { Db, Tx } from '../db/client.js';
import type { Runtime } from '../runtime.js';

/** Starts per second per store instance when neither --store-rate nor the store's module names a rate. */
const DEFAULT_STORE_RATE = 10;

export interface FleetSelection {
  all?: boolean;
  selector?: string;
  store?: string;
  issuer?: string;
}

export interface FleetOptions {
  /** Overlap for each replaced version instead of the secret's grace. */
  graceMs?: number;
  dryRun: boolean;
  perStore: number;
  perTarget: number;
  /** Rotations started per second per store instance; without it, each store's module's `fleetStartsPerSecond` (10 when it names none). */
  storeRate?: number;
  out: (line: string) => void;
  /** How often a progress line is printed at most, when a figure (done, failed, remaining, running) changed. @defaultValue 2000 */
  progressEveryMs?: number;
  /** How often one is printed while no figure changes (a held run, a queue with no worker). @defaultValue 30000 */
  quietEveryMs?: number;
}

export interface FleetResult {
  fleet: string | null;
  resumed: boolean;
  selected: number;
  done: number;
  failed: number;
  seconds: number;
  /** Each secret whose rotation did not succeed, by name: its run, how it ended and its error's code (never the error's text: it may quote a provider). */
  failures: FleetFailure[];
  /** A dry run: the secrets the real command would request, by name (of an unfinished fleet, those it has not requested yet). */
  planned?: string[];
}

/** How many names a dry run's text output lists. */
const PLANNED_SHOWN = 100;

export interface FleetFailure {
  secret: string;
  runId: string | null;
  /** `failed`, `rolled_back`, `skipped` (a stale request: no run) or `removed` (removed from the config before its request: no run, its keys still live). */
  status: string;
  /** The run's error code (`REKEY_ERR_DENIED`), or null when none was recorded. */
  code: string | null;
}

interface Member {
  name: string;
  store: string;
  targets: string[];
}

type Binding = { provider?: string; type?: string } | string;

const name = (binding: Binding | undefined): string => (typeof binding === 'string' ? binding : (binding?.provider ?? `@${binding?.type ?? '?'}`));

/** Active secrets matching the selection, by name, read a page at a time. */
async function select(runtime: Runtime, selection: FleetSelection): Promise<Member[]> {
  const glob = selection.selector ? globRegExp(selection.selector) : undefined;
  const members: Member[] = [];
  for (let after = ''; ; ) {
    const rows = await runtime.db.secret.findMany({ where: { removedAt: null, name: { gt: after } }, select: { name: true, spec: true }, orderBy: { name: 'asc' }, take: 1000 });
    for (const row of rows) {
      const spec = row.spec as { store?: Binding; issuer?: Binding; targets?: Binding[] };
      const issuer = typeof spec.issuer === 'object' ? [spec.issuer.provider, spec.issuer.type] : [];
      if (glob && !glob.test(row.name)) continue;
      if (selection.store && name(spec.store) !== selection.store) continue;
      if (selection.issuer && !issuer.includes(selection.issuer)) continue;
      members.push({ name: row.name, store: name(spec.store), targets: (spec.targets ?? []).map(name) });
    }
    if (rows.length < 1000) return members;
    after = rows.at(-1)!.name;
  }
}

/**
 * Each selected store instance's start rate: `override` (--store-rate) or its module's
 * `fleetStartsPerSecond` (Google Secret Manager's per-project quota is far below AWS's per region).
 */
async function storeRates(runtime: Runtime, members: readonly Member[], override: number | undefined): Promise<Map<string, number>> {
  const stores = [...new Set(members.map((m) => m.store))];
  if (override !== undefined) return new Map(stores.map((store) => [store, override]));
  const { providers } = await runtime.resolver.config();
  // An instance of the providers: section by name, or `@<type>` for an inline binding.
  const typeOf = (store: string) => (store.startsWith('@') ? store.slice(1) : providers[store]?.type);
  const modules = new Map((await runtime.modules.load(stores.flatMap((s) => typeOf(s) ?? []))).map((m) => [m.type, m]));
  return new Map(stores.map((store) => [store, modules.get(typeOf(store) ?? '')?.fleetStartsPerSecond ?? DEFAULT_STORE_RATE]));
}

/** `vault 10/s, gcp 1/s`, or one figure when every store has the same rate. */
function ratesText(rates: ReadonlyMap<string, number>): string {
  const distinct = new Set(rates.values());
  return distinct.size === 1 ? `${[...distinct][0]} started/s` : [...rates].map(([store, rate]) => `${store} ${rate}/s`).join(', ');
}

/**
 * Rotations running now, per store (`s:<name>`) and target (`t:<name>`) instance, and rotations
 * started in the last second per store (`r:<name>`): every one, not only the fleet's (a scheduled,
 * manual or leak rotation uses the same store's write quota); and the slots fleet commands have
 * claimed for requests not recorded yet. Read under {@link SLOTS_LOCK}.
 */
async function busy(db: Tx): Promise<Map<string, number>> {
  // A run's updated_at is stamped at its insert too, so the index on it finds the recent starts.
  const rows = await db.$queryRaw<Array<{ store: Binding | null; targets: Binding[] | null; running: boolean; recent: boolean }>>`
    SELECT s.spec->'store' AS store, s.spec->'targets' AS targets, r.status = 'running' AS running,
           r.started_at > (now() AT TIME ZONE 'UTC') - interval '1 second' AS recent
      FROM runs r JOIN secrets s ON s.id = r.secret_id
     WHERE r.kind = 'rotation' AND (r.status = 'running' OR (r.updated_at > (now() AT TIME ZONE 'UTC') - interval '1 second' AND r.started_at > (now() AT TIME ZONE 'UTC') - interval '1 second'))`;
  const counts = new Map<string, number>();
  const count = (instance: string) => counts.set(instance, (counts.get(instance) ?? 0) + 1);
  for (const row of rows) {
    if (row.recent) count(`r:${name(row.store ?? undefined)}`);
    if (row.running) for (const instance of [`s:${name(row.store ?? undefined)}`, ...(row.targets ?? []).map((t) => `t:${name(t)}`)]) count(instance);
  }
  const claimed = await db.$queryRaw<Array<{ instance: string }>>`
    SELECT unnest(instances) AS instance FROM fleet_slots WHERE expires_at > (now() AT TIME ZONE 'UTC')`;
  for (const { instance } of claimed) count(instance);
  return counts;
}

/**
 * Held (a transaction's advisory lock) by a fleet command from reading the running rotations and
 * claims to the commit of its own claim on the slots that reading left free: two fleet commands at
 * once (two operators, a retried CI job, overlapping selections) would otherwise each fill the same
 * free slot of a store or target, and each start --store-rate per second there.
 */
const SLOTS_LOCK = 'rekey:fleet-slots';

/**
 * How long a claim on slots holds when its command never gives it back (killed mid-pass): the
 * slots are then free again after this long at most. A command starts requests within the first
 * half of it only, so each of its requests is recorded while its claim still counts.
 */
export const CLAIM_MS = 60_000;

/** The selection as it was given on the command line: `--selector payments-* --store vault`. */
function selectionText(selection: FleetSelection): string {
  const parts = [selection.all ? '--all' : '', selection.selector === undefined ? '' : `--selector ${selection.selector}`, selection.store === undefined ? '' : `--store ${selection.store}`, selection.issuer === undefined ? '' : `--issuer ${selection.issuer}`];
  return parts.filter(Boolean).join(' ');
}

/**
 * How long an unfinished fleet stays resumable. A fleet stopped and never run again is not resumed
 * after that: its rotations, long past their overlap, would count as the new command's, and the
 * secrets they rotated would keep the keys an incident since exposed.
 */
export const FLEET_RESUMABLE_MS = 24 * 3600 * 1000;

interface Unfinished {
  fleet: string;
  /** How long ago its `fleet.started` was written. */
  ageMs: number;
}

/** The last unfinished fleet of this selection, from the audit log, if any (resumable or not: see {@link FLEET_RESUMABLE_MS}). */
async function unfinished(db: Db | Tx, key: string): Promise<Unfinished | undefined> {
  const [last] = await db.$queryRaw<Array<{ action: string; fleet: string; at: Date }>>`
    SELECT action, data->>'fleet' AS fleet, at FROM audit_events
     WHERE action IN ('fleet.started', 'fleet.finished') AND data->>'selection' = ${key}
     ORDER BY seq DESC LIMIT 1`;
  return last?.action === 'fleet.started' ? { fleet: last.fleet, ageMs: Date.now() - last.at.getTime() } : undefined;
}

/** A fleet's age for the header line, in whole minutes (`3d 4h`, `12m`). */
const age = (ms: number): string => humanDuration(Math.max(60_000, Math.floor(ms / 60_000) * 60_000));

/**
 * Each secret's run of the fleet (id and status), read once when a fleet is resumed: the runs its
 * requests made, and those they joined (a rotation of the secret already running, audited
 * `trigger.joined` under the request's key), which rotated the secret for it.
 */
async function runsOf(runtime: Runtime, fleet: string): Promise<Array<{ id: string; name: string; status: string }>> {
  const keys = `fleet:${fleet}:%`;
  return runtime.db.$queryRaw<Array<{ id: string; name: string; status: string }>>`
    SELECT r.id::text AS id, s.name, r.status::text AS status FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE r.idempotency_key LIKE ${keys}
    UNION
    SELECT r.id::text AS id, s.name, r.status::text AS status FROM audit_events e JOIN runs r ON r.id::text = e.run_id JOIN secrets s ON s.id = r.secret_id
     WHERE e.action = 'trigger.joined' AND e.data->>'idempotencyKey' LIKE ${keys}`;
}

/**
 * The unfinished fleet of this selection, joined when it is resumable, or a new one with its
 * `fleet.started` event: under the selection's lock, so the same command started twice at once
 * makes one fleet. `abandoned`: the unfinished fleet too old to resume, when a new one replaced it.
 */
async function joinOrStart(runtime: Runtime, key: string, secrets: number): Promise<{ fleet: string; resumed: boolean; found: Unfinished | undefined }> {
  await runtime.connect();
  return runtime.db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT 1 FROM pg_advisory_xact_lock(hashtextextended(${`fleet:${key}`}, 0))`;
    const found = await unfinished(tx, key);
    if (found && found.ageMs < FLEET_RESUMABLE_MS) {
      // Every command that drives the fleet is in the audit log, not only the one that started it.
      await runtime.audit.append(tx, { actor: runtime.actor, action: 'fleet.resumed', data: { fleet: found.fleet, selection: key, secrets } });
      return { fleet: found.fleet, resumed: true, found };
    }
    const fleet = randomUUID();
    await runtime.audit.append(tx, { actor: runtime.actor, action: 'fleet.started', data: { fleet, selection: key, secrets, ...(found ? { abandoned: found.fleet } : {}) } });
    return { fleet, resumed: false, found };
  });
}

/** The failed secrets' runs and error codes, read once at the end. */
async function failuresOf(runtime: Runtime, secrets: string[], runs: ReadonlyMap<string, string>, ids: ReadonlyMap<string, string>): Promise<FleetFailure[]> {
  const errors = new Map<string, string | null>();
  const wanted = secrets.flatMap((s) => (ids.has(s) ? [ids.get(s)!] : []));
  for (let i = 0; i < wanted.length; i += 1000) {
    for (const r of await runtime.db.run.findMany({ where: { id: { in: wanted.slice(i, i + 1000) } }, select: { id: true, error: true } })) errors.set(r.id, r.error);
  }
  return secrets.map((secret) => {
    const runId = ids.get(secret) ?? null;
    const error = runId === null ? null : errors.get(runId);
    const status = runs.get(secret)!;
    return { secret, runId, status, code: status === 'removed' ? 'REKEY_ERR_UNKNOWN' : ((error && /^REKEY_ERR_[A-Z0-9_]+/.exec(error)?.[0]) ?? null) };
  });
}

/**
 * --grace against what callers still hold of the selected secrets: a token lives up to its grant's
 * ttl after its signing key stopped signing, a value is kept up to its grant's ttl; the config refuses
 * a ttl longer than the secret's grace (a rotation would retire what is still in use), and --grace
 * replaces that grace, so it is held to the same rule. @throws RekeyError REKEY_ERR_CONFIG naming
 * each secret and grant it would cut.
 */
async function checkGrace(runtime: Runtime, members: readonly Member[], graceMs: number): Promise<void> {
  const selected = new Set(members.map((m) => m.name));
  const held = Object.values((await runtime.resolver.config()).delivery?.grants ?? {}).map((g) =>
    g.token ? { grant: g.name, secret: g.token.signingKey, ttlMs: g.token.ttlMs, what: 'tokens signed by' } : { grant: g.name, secret: g.value!.secret, ttlMs: g.value!.ttlMs, what: 'values of' },
  );
  const cut = held.filter((h) => selected.has(h.secret) && h.ttlMs > graceMs);
  if (!cut.length) return;
  const longest = Math.max(...cut.map((h) => h.ttlMs));
  throw new RekeyError(
    'REKEY_ERR_CONFIG',
    `--grace ${formatDuration(graceMs)} is shorter than the ttl of ${cut.map((h) => `${h.what} ${h.secret} (grant ${h.grant}: ${formatDuration(h.ttlMs)})`).join(', ')}: ` +
      `their rotation would retire keys and values still in use. Give --grace ${formatDuration(longest)} or more, or leave those secrets out of the selection (a leaked one: rekey revoke)`,
  );
}

const instancesOf = (m: Member): string[] => [`s:${m.store}`, `r:${m.store}`, ...m.targets.map((t) => `t:${t}`)];

/**
 * Claims for this command the slots of the members of `waiting` that the stores' and targets' free
 * slots and start rates allow: a short transaction under {@link SLOTS_LOCK}, whose claim (a
 * fleet_slots row) every fleet command counts until {@link releaseSlots}. The requests are made
 * after its commit, so neither a slow request nor a long pass holds the lock, a transaction or a
 * connection. Answers the members claimed and the claim's id (null when none was).
 */
async function claimSlots(runtime: Runtime, waiting: readonly Member[], options: FleetOptions, rates: ReadonlyMap<string, number>): Promise<{ claim: string | null; members: Member[] }> {
  return runtime.db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT 1 FROM pg_advisory_xact_lock(hashtextextended(${SLOTS_LOCK}, 0))`;
    await tx.$executeRaw`DELETE FROM fleet_slots WHERE expires_at <= (now() AT TIME ZONE 'UTC')`;
    const counts = await busy(tx);
    const full = (instance: string, limit: number) => (counts.get(instance) ?? 0) >= limit;
    const members: Member[] = [];
    for (const m of waiting) {
      if (full(`s:${m.store}`, options.perStore) || full(`r:${m.store}`, rates.get(m.store)!) || m.targets.some((t) => full(`t:${t}`, options.perTarget))) continue;
      members.push(m);
      for (const instance of instancesOf(m)) counts.set(instance, (counts.get(instance) ?? 0) + 1);
    }
    if (!members.length) return { claim: null, members };
    const claim = randomUUID();
    await tx.$executeRaw`INSERT INTO fleet_slots (id, instances, expires_at)
      VALUES (${claim}::uuid, ${members.flatMap(instancesOf)}::text[], (now() AT TIME ZONE 'UTC') + make_interval(secs => ${CLAIM_MS / 1000}::double precision))`;
    return { claim, members };
  });
}

/** Gives a claim back: its requests' runs are recorded (or were never made), and count by themselves. Idempotent. */
async function releaseSlots(runtime: Runtime, claim: string): Promise<void> {
  await runtime.db.$executeRaw`DELETE FROM fleet_slots WHERE id = ${claim}::uuid`;
}

/** Requests the rotations of `waiting` that the stores' and targets' free slots and start rates allow (see {@link claimSlots}). */
async function requestSome(runtime: Runtime, waiting: readonly Member[], fleet: string, options: FleetOptions, rates: ReadonlyMap<string, number>, runs: Map<string, string>, open: Map<string, string>, ids: Map<string, string>): Promise<void> {
  // The claim's clock starts before its transaction, so its lapse in the database comes after this one's.
  const claimedAt = Date.now();
  const { claim, members } = await claimSlots(runtime, waiting, options, rates);
  if (claim === null) return;
  try {
    for (const m of members) {
      // A request started now could be recorded after the claim lapsed: leave the rest to the next pass's claim.
      if (Date.now() - claimedAt > CLAIM_MS / 2) break;
      const idempotencyKey = `fleet:${fleet}:${m.name}`;
      const result = await runtime.engine.requestRotation({ secret: m.name, trigger: 'fleet', idempotencyKey, ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }) }).catch((error: unknown) => {
        // Removed from the config since it was selected (an apply during the incident): the rest go on; it is reported, its keys still live.
        if (error instanceof RekeyError && error.code === 'REKEY_ERR_UNKNOWN') return 'removed' as const;
        // Recorded, but Redis refused its job (a failover): a worker's reconcile pass queues it; the fleet follows it and goes on.
        if (error instanceof RekeyError && error.code === 'REKEY_ERR_NOT_QUEUED') return 'unqueued' as const;
        throw error;
      });
      if (result === 'removed') {
        runs.set(m.name, 'removed');
        continue;
      }
      if (result === 'unqueued') {
        const run = await runtime.db.run.findUnique({ where: { idempotencyKey }, select: { id: true, status: true } });
        if (!run) throw new RekeyError('REKEY_ERR_NOT_QUEUED', `the rotation of ${m.name} could not be queued`);
        runtime.log.warn({ secret: m.name, runId: run.id }, 'fleet: rotation recorded but not queued; a reconcile pass queues it');
        options.out(`  ${m.name}: recorded, not queued (Redis refused the job); a worker's reconcile pass starts it`);
        open.set(run.id, m.name);
        ids.set(m.name, run.id);
        runs.set(m.name, run.status);
        continue;
      }
      // A stale request (never for a fleet's: it names no due time) has nothing to wait for.
      if (result.status === 'stale') runs.set(m.name, 'skipped');
      else {
        open.set(result.run.id, m.name);
        ids.set(m.name, result.run.id);
        runs.set(m.name, 'running');
      }
    }
  } finally {
    // A claim not given back (the database unreachable now) lapses after CLAIM_MS.
    await releaseSlots(runtime, claim).catch((error: unknown) => runtime.log.warn({ error: describeError(error) }, 'fleet: could not give back a claim on slots; it lapses'));
  }
}

/**
 * What the real command would do, read only: the secrets it would request (of an unfinished
 * fleet, those with no run in it yet) and, for that fleet, its counts so far.
 */
async function dryRun(runtime: Runtime, members: readonly Member[], fleet: string | null, resumed: boolean, out: (line: string) => void): Promise<FleetResult> {
  const runs = new Map((fleet === null ? [] : await runsOf(runtime, fleet)).map((r) => [r.name, r.status]));
  const statuses = members.map((m) => runs.get(m.name));
  const planned = members.filter((m) => !runs.has(m.name)).map((m) => m.name);
  const done = statuses.filter((s) => s === 'succeeded').length;
  const failed = statuses.filter((s) => s === 'failed' || s === 'rolled_back').length;
  if (resumed) out(`  so far: ${done} done, ${failed} failed, ${statuses.filter((s) => s === 'running').length} running`);
  const shown = planned.slice(0, PLANNED_SHOWN);
  out(`Would request ${planned.length} rotations${shown.length ? `: ${shown.join(', ')}` : ''}${planned.length > shown.length ? ` ... and ${planned.length - shown.length} more (--json lists every one)` : ''}`);
  return { fleet, resumed, selected: members.length, done, failed, seconds: 0, failures: [], planned };
}

export async function rotateFleet(runtime: Runtime, selection: FleetSelection, options: FleetOptions): Promise<FleetResult> {
  const started = Date.now();
  const members = await select(runtime, selection);
  // A selection that names nothing (a typo in an incident) must not read as a fleet rotated: exit 1, naming it.
  if (!members.length) throw new RekeyError('REKEY_ERR_UNKNOWN', `no active secret matches ${selectionText(selection)}`);
  if (options.graceMs !== undefined) await checkGrace(runtime, members, options.graceMs);
  const key = canonicalJson({ ...selection, graceMs: options.graceMs ?? null });
  // A dry run only reads; a real one joins or starts the fleet under the selection's lock.
  const dry = options.dryRun ? await unfinished(runtime.db, key) : undefined;
  const { fleet, resumed, found } = options.dryRun
    ? dry && dry.ageMs < FLEET_RESUMABLE_MS
      ? { fleet: dry.fleet, resumed: true, found: dry }
      : { fleet: null, resumed: false, found: dry }
    : await joinOrStart(runtime, key, members.length);
  const rates = await storeRates(runtime, members, options.storeRate);
  const targets = new Set(members.flatMap((m) => m.targets));
  const header = resumed ? `Resuming fleet ${fleet} (started ${age(found!.ageMs)} ago)` : found ? `Fleet rotation (fleet ${found.fleet} of this selection, started ${age(found.ageMs)} ago, never finished: not resumed)` : 'Fleet rotation';
  options.out(
    `${header}: ${members.length} secrets, ${rates.size} store(s), ${targets.size} target(s); ` +
      `at most ${options.perStore} at once per store (${ratesText(rates)}), ${options.perTarget} per target.`,
  );
  if (options.dryRun || fleet === null) return dryRun(runtime, members, fleet, resumed, options.out);
  const audit = (action: string, data: Record<string, string | number>) => runtime.db.$transaction((tx) => runtime.audit.append(tx, { actor: runtime.actor, action, data: { fleet, selection: key, ...data } }));

  // Each secret's run status; the runs not finished yet are followed by id (the fleet's own and
  // any it joined), so a poll reads only those, whatever the size of the fleet.
  const runs = new Map<string, string>();
  const open = new Map<string, string>(); // run id -> secret
  const ids = new Map<string, string>(); // secret -> its run in this fleet
  for (const r of resumed ? await runsOf(runtime, fleet) : []) {
    runs.set(r.name, r.status);
    ids.set(r.name, r.id);
    if (r.status === 'running') open.set(r.id, r.name);
  }
  let lastProgress = 0;
  let lastFigures = '';
  let before: number | undefined; // finished before this command (a resumed fleet), for the rate
  for (;;) {
    if (open.size) {
      for (const r of await runtime.db.run.findMany({ where: { id: { in: [...open.keys()] } }, select: { id: true, status: true } })) {
        runs.set(open.get(r.id)!, r.status);
        if (r.status !== 'running') open.delete(r.id);
      }
    }
    const now = Date.now();
    const waiting = members.filter((m) => !runs.has(m.name));
    if (waiting.length) await requestSome(runtime, waiting, fleet, options, rates, runs, open, ids);
    const statuses = members.map((m) => runs.get(m.name));
    const done = statuses.filter((s) => s === 'succeeded').length;
    const failed = statuses.filter((s) => s === 'failed' || s === 'rolled_back' || s === 'skipped' || s === 'removed').length;
    const finished = done + failed === members.length;
    const remaining = members.length - done - failed;
    const figures = `  ${done} done, ${failed} failed, ${remaining} remaining (${statuses.filter((s) => s === 'running').length} running)`;
    // The same figures again only once per quiet interval: a log or a file is not filled with one line every 2 s.
    const due = now - lastProgress >= (figures === lastFigures ? (options.quietEveryMs ?? 30_000) : (options.progressEveryMs ?? 2000));
    if (finished || due) {
      before ??= done + failed;
      const rate = (done + failed - before) / Math.max(0.001, (now - started) / 1000);
      const eta = rate > 0 ? humanDuration((remaining / rate) * 1000) : 'unknown';
      options.out(`${figures}; ${rate.toFixed(1)}/s, ETA ${finished ? '-' : eta}`);
      lastProgress = now;
      lastFigures = figures;
    }
    if (finished) {
      await audit('fleet.finished', { done, failed });
      const failures = failed ? await failuresOf(runtime, members.map((m) => m.name).filter((n) => runs.get(n) !== 'succeeded'), runs, ids) : [];
      return { fleet, resumed, selected: members.length, done, failed, seconds: (Date.now() - started) / 1000, failures };
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
