/**
 * The one path every authenticated leak report takes into core: fingerprint (when the
 * sender gave a token), then Engine.reportLeak, which matches the version, acts on the
 * secret's onLeak policy and records the report once per (source, delivery id,
 * fingerprint).
 *
 * Core audits with the engine's actor; here the actor names the report
 * (`leak/<source>/<delivery id>`), so each state change the report causes (version
 * compromised, emergency rotation started) carries its source and delivery id in the
 * audit log, not only the `leak.reported` event. A report from `rekey revoke --token-stdin`
 * (source `cli`) has a person behind it: its events name who ran the command (the runtime's
 * actor, `cli:<OS user>`), and `leak.reported` keeps its delivery id in its data.
 */
import { revokeLeakedToken } from '../api/tokens.js';
import type { LeakRecord } from '../core/model.js';
import { SecretValue } from '../core/secret-value.js';
import type { Runtime } from '../runtime.js';
import type { LeakMetrics } from './metrics.js';

/** Where a report came from: a receiver, or `cli` for `rekey revoke --token-stdin`. */
export type LeakSource = 'github' | 'gitguardian' | 'aws-health' | 'webhook' | 'cli';

/** The longest token a report may carry: a longer one is not a credential, and it bounds the work. */
export const MAX_TOKEN_LENGTH = 4096;

/** Whether a reported value can be a token: a non-empty string of at most MAX_TOKEN_LENGTH. */
export function isToken(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TOKEN_LENGTH;
}

/** Delivery ids we store: what senders use (UUIDs, numbers, msg_...), bounded. */
export const DELIVERY_ID = /^[A-Za-z0-9._:@/+=-]{1,200}$/;

export class LeakReporter {
  constructor(
    private readonly runtime: Runtime,
    private readonly metrics?: LeakMetrics,
  ) {}

  /** rekey's fingerprint of a reported token (HMAC-SHA256 under REKEY_FINGERPRINT_KEY). */
  fingerprint(token: SecretValue): string {
    return this.runtime.engine.deps.fingerprint(token);
  }

  /**
   * Reports one leaked token: only its fingerprint goes further. An admin API token (rekey's
   * own, `rkadm_...`) is revoked first; its report is then recorded like any unknown key's.
   */
  async reportToken(source: LeakSource, deliveryId: string, token: string, receivedAt: Date): Promise<LeakRecord & { fingerprint: string }> {
    const { db, audit, log } = this.runtime;
    const adminToken = await revokeLeakedToken(db, audit, token, this.actorOf(source, deliveryId));
    if (adminToken) log.warn({ tokenName: adminToken, source }, 'admin API token reported leaked: revoked');
    const fingerprint = this.fingerprint(SecretValue.of(token));
    return { ...(await this.report(source, deliveryId, fingerprint, receivedAt)), fingerprint };
  }

  /**
   * Which of `fingerprints` name a version rekey issued (live or not), in one query: a receiver
   * given many tokens at once acts on those first.
   */
  async issued(fingerprints: readonly string[]): Promise<Set<string>> {
    if (!fingerprints.length) return new Set();
    const rows = await this.runtime.db.version.findMany({ where: { fingerprint: { in: [...new Set(fingerprints)] } }, select: { fingerprint: true } });
    return new Set(rows.flatMap((r) => (r.fingerprint ? [r.fingerprint] : [])));
  }

  /** Reports one leaked credential, known by its fingerprint (or an identifier standing in for it). */
  async report(source: LeakSource, deliveryId: string, fingerprint: string, receivedAt: Date): Promise<LeakRecord> {
    const record = await this.runtime.engine.as(this.actorOf(source, deliveryId)).reportLeak({ source, deliveryId, fingerprint, receivedAt });
    if (source !== 'cli') this.metrics?.reported(source, record.duplicate ? 'duplicate' : record.outcome);
    return record;
  }

  /** Who a report's audit events name: the receiver's report, or who ran the command. */
  private actorOf(source: LeakSource, deliveryId: string): string {
    return source === 'cli' ? this.runtime.actor : `leak/${source}/${deliveryId}`;
  }
}
