/**
 * StateRepository on PostgreSQL. Every state change locks its secret's row (so promotions
 * and leak reports on one secret serialize) and appends its audit event in the same
 * transaction. A rotation's and a leak's reads and writes are named statements on the pool
 * Prisma uses (src/db/sql.ts); the rest is Prisma. The work is split by subject:
 * - reads.ts: versions, runs, deliveries, secrets;
 * - runs.ts: runs created, leased, stepped, finished;
 * - rotation-steps.ts: a rotation's version writes (created, issued, pending, deliveries, promotion);
 * - takedown-writes.ts: transitions, leak reports, blocked stamps, decommission, grace ends;
 * - pending-work.ts: what reconcile() re-derives.
 */
import type { StateRepository } from '../core/model.js';
import type { AuditLog } from './audit.js';
import type { Db } from './client.js';
import { pendingWork } from './pending-work.js';
import { Reads } from './reads.js';
import { RotationSteps } from './rotation-steps.js';
import { Runs } from './runs.js';
import { sql } from './sql.js';
import { TakedownWrites } from './takedown-writes.js';

export class PrismaRepository implements StateRepository {
  private readonly reads: Reads;
  private readonly runs: Runs;
  private readonly steps: RotationSteps;
  private readonly takedowns: TakedownWrites;

  constructor(
    private readonly db: Db,
    audit: AuditLog,
  ) {
    const statements = sql(db);
    this.reads = new Reads(statements);
    this.takedowns = new TakedownWrites(db, audit);
    this.runs = new Runs(db, statements, audit, this.reads, this.takedowns);
    this.steps = new RotationSteps(db, audit);
  }

  getSecret: StateRepository['getSecret'] = (name) => this.reads.getSecret(name);
  getRun: StateRepository['getRun'] = (id) => this.reads.getRun(id);
  getVersion: StateRepository['getVersion'] = (id) => this.reads.getVersion(id);
  currentVersion: StateRepository['currentVersion'] = (secretId) => this.reads.currentVersion(secretId);
  findVersionByFingerprint: StateRepository['findVersionByFingerprint'] = (fingerprint) => this.reads.findVersionByFingerprint(fingerprint);
  findVersionsByFingerprint: StateRepository['findVersionsByFingerprint'] = (fingerprint) => this.reads.findVersionsByFingerprint(fingerprint);
  findVersionByNumber: StateRepository['findVersionByNumber'] = (secret, number) => this.reads.findVersionByNumber(secret, number);
  findVersionByPublicId: StateRepository['findVersionByPublicId'] = (publicId) => this.reads.findVersionByPublicId(publicId);
  lastPromoted: StateRepository['lastPromoted'] = (secretId, before) => this.reads.lastPromoted(secretId, before);
  deliveries: StateRepository['deliveries'] = (versionId) => this.reads.deliveries(versionId);
  versions: StateRepository['versions'] = (secretId, states) => this.reads.versions(secretId, states);
  versionsOf: StateRepository['versionsOf'] = (names, states) => this.reads.versionsOf(names, states);

  createRotationRun: StateRepository['createRotationRun'] = (input) => this.runs.createRotationRun(input);
  startVersionRun: StateRepository['startVersionRun'] = (input) => this.runs.startVersionRun(input);
  openVersionRun: StateRepository['openVersionRun'] = (kind, versionId) => this.runs.openVersionRun(kind, versionId);
  takeLease: StateRepository['takeLease'] = (runId, owner, ms) => this.runs.takeLease(runId, owner, ms);
  renewLease: StateRepository['renewLease'] = (runId, owner, ms) => this.runs.renewLease(runId, owner, ms);
  startRotationAttempt: StateRepository['startRotationAttempt'] = (runId, owner, ms, audit) => this.steps.startAttempt(runId, owner, ms, audit);
  releaseLease: StateRepository['releaseLease'] = (runId, owner) => this.runs.releaseLease(runId, owner);
  recordTrigger: StateRepository['recordTrigger'] = (input, audit) => this.runs.recordTrigger(input, audit);
  setRunStep: StateRepository['setRunStep'] = (runId, step, leaseOwner) => this.runs.setRunStep(runId, step, leaseOwner);
  setRunGrace: StateRepository['setRunGrace'] = (runId, graceMs, audit) => this.runs.setRunGrace(runId, graceMs, audit);
  restartRun: StateRepository['restartRun'] = (runId, audit, leaseOwner) => this.runs.restartRun(runId, audit, leaseOwner);
  recordRunError: StateRepository['recordRunError'] = (runId, error, leaseOwner) => this.runs.recordRunError(runId, error, leaseOwner);
  finishRun: StateRepository['finishRun'] = (runId, status, audit, error, leaseOwner) => this.runs.finishRun(runId, status, audit, error, leaseOwner);

  createVersion: StateRepository['createVersion'] = (runId, audit) => this.steps.createVersion(runId, audit);
  recordIssued: StateRepository['recordIssued'] = (versionId, issued, audit, leaseOwner) => this.steps.recordIssued(versionId, issued, audit, leaseOwner);
  markPending: StateRepository['markPending'] = (versionId, storeVersionId, audit, next, leaseOwner) => this.steps.markPending(versionId, storeVersionId, audit, next, leaseOwner);
  recordProgress: StateRepository['recordProgress'] = (versionId, next, audit, leaseOwner) => this.steps.recordProgress(versionId, next, audit, leaseOwner);
  setDelivery: StateRepository['setDelivery'] = (versionId, target, status, audit, error, leaseOwner) => this.steps.setDelivery(versionId, target, status, audit, error, leaseOwner);
  promote: StateRepository['promote'] = (runId, plan, audit, leaseOwner) => this.steps.promote(runId, plan, audit, leaseOwner);

  transition: StateRepository['transition'] = (versionId, from, to, audit, leaseOwner) => this.takedowns.transition(versionId, from, to, audit, leaseOwner);
  decommission: StateRepository['decommission'] = (secretId, plan, audit) => this.takedowns.decommission(secretId, plan, audit);
  endGrace: StateRepository['endGrace'] = (secretId, plan, audit, notices) => this.takedowns.endGrace(secretId, plan, audit, notices);
  recordLeak: StateRepository['recordLeak'] = (input, audit, notices) => this.takedowns.recordLeak(input, audit, notices);
  markBlocked: StateRepository['markBlocked'] = (versionId, notices) => this.takedowns.markBlocked(versionId, notices);

  pendingWork: StateRepository['pendingWork'] = (since) => pendingWork(this.db, since);
}
