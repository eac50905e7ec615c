/** Renders audit events as a readable timeline (the demo and `rekey dev` use it). */
import type { Db } from '../db/client.js';

interface Event {
  seq: bigint;
  at: Date;
  action: string;
  secret: string | null;
  versionId: string | null;
  data: unknown;
}

export class AuditTail {
  private after = -1n;
  private readonly numbers = new Map<string, number>();

  constructor(
    private readonly db: Db,
    /** How instants inside events (a grace end) are shown. */
    private readonly time: (at: Date) => string = (at) => at.toISOString(),
  ) {}

  /** Skips everything already in the log. */
  async start(): Promise<void> {
    const last = await this.db.auditEvent.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true } });
    this.after = last?.seq ?? -1n;
  }

  /** New events since the last call, as text lines (noise such as step bookkeeping left out). */
  async lines(): Promise<Array<{ at: Date; text: string }>> {
    const events = (await this.db.auditEvent.findMany({ where: { seq: { gt: this.after } }, orderBy: { seq: 'asc' } })) as Event[];
    const out: Array<{ at: Date; text: string }> = [];
    for (const event of events) {
      this.after = event.seq;
      const text = await this.describe(event);
      if (text) out.push({ at: event.at, text });
    }
    return out;
  }

  private async describe(event: Event): Promise<string | undefined> {
    const data = (event.data ?? {}) as Record<string, string | number | undefined>;
    const v = await this.versionLabel(event.versionId, data.number);
    switch (event.action) {
      case 'run.started':
        return `${data.kind} of ${event.secret} started (${data.trigger})`;
      case 'run.finished':
        return `${data.kind} of ${event.secret} ${data.status}`;
      case 'version.issued':
        return `${v} issued (${String(data.fingerprint).slice(0, 11)}…)`;
      case 'version.pending':
        return `${v} written to the store as pending`;
      case 'delivery.deployed':
        return `${v} deployed to ${data.target}`;
      case 'delivery.verified':
        return `${v} verified at ${data.target}`;
      case 'delivery.retired':
        return `${v} retired from ${data.target}`;
      case 'delivery.failed':
        return `${v} failed at ${data.target}`;
      case 'version.current':
        return `${v} is current`;
      case 'version.previous':
        return `${v} is previous: still accepted until ${this.time(new Date(String(data.graceEndsAt)))}`;
      case 'version.retired':
      case 'version.revoked':
      case 'version.compromised':
      case 'version.failed':
        return `${v} is ${event.action.slice('version.'.length)}`;
      case 'version.leaked':
        return `${v} reported leaked (still current: an emergency rotation replaces it)`;
      case 'leak.reported':
        return `leak report from ${data.source}: ${data.outcome}`;
      case 'config.applied':
        return `config applied (revision ${data.revision})`;
      default:
        return undefined;
    }
  }

  private async versionLabel(versionId: string | null, number: unknown): Promise<string> {
    if (typeof number === 'number') {
      if (versionId) this.numbers.set(versionId, number);
      return `v${number}`;
    }
    if (!versionId) return 'version';
    let n = this.numbers.get(versionId);
    if (n === undefined) {
      n = (await this.db.version.findUnique({ where: { id: versionId }, select: { number: true } }))?.number;
      if (n !== undefined) this.numbers.set(versionId, n);
    }
    return n === undefined ? 'version' : `v${n}`;
  }
}
