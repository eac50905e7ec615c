/**
 * Test-only provider `memory`: a store, an issuer and a target kept in process memory,
 * recording every call in order (Infisical's call-order test pattern) and failing on
 * demand. Instances with the same `journal` share one Journal, reachable from tests
 * through journals.get(name).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ProviderError } from '../../src/core/errors.js';
import type { Call, ExpectedCurrent, Inspection, Issuer, SecretStore, Stage, StoredVersion, Target, VersionRef } from '../../src/core/ports.js';
import { defineProvider } from '../../src/core/provider.js';
import { SecretValue } from '../../src/core/secret-value.js';

export interface Fault {
  /** Which call fails: `issue`, `deploy:edge`, `store.promote`, ... */
  call: string;
  /** How many times (Infinity for always). */
  times: number;
  retryable: boolean;
}

export interface StoredEntry {
  secret: string;
  versionId: string;
  value: SecretValue;
  stages: Stage[];
}

/**
 * The store's versions by storeVersionId, indexed by secret as they are set and deleted (tests
 * set and delete entries by hand too), so a secret's calls cost O(its versions), not O(all).
 */
class StoredVersions extends Map<string, StoredEntry> {
  private readonly bySecret = new Map<string, Map<string, StoredEntry>>();

  /** This secret's versions, in the order they were first stored. */
  of(secret: string): ReadonlyMap<string, StoredEntry> {
    return this.bySecret.get(secret) ?? new Map<string, StoredEntry>();
  }
  override set(id: string, entry: StoredEntry): this {
    const before = this.get(id);
    if (before && before.secret !== entry.secret) this.unindex(id, before.secret);
    let versions = this.bySecret.get(entry.secret);
    if (!versions) this.bySecret.set(entry.secret, (versions = new Map<string, StoredEntry>()));
    versions.set(id, entry);
    return super.set(id, entry);
  }
  override delete(id: string): boolean {
    const before = this.get(id);
    if (before) this.unindex(id, before.secret);
    return super.delete(id);
  }
  override clear(): void {
    this.bySecret.clear();
    super.clear();
  }
  private unindex(id: string, secret: string): void {
    const versions = this.bySecret.get(secret)!;
    versions.delete(id);
    if (versions.size === 0) this.bySecret.delete(secret);
  }
}

export class Journal {
  readonly calls: string[] = [];
  readonly faults: Fault[] = [];
  /** Store: storeVersionId -> { secret, versionId, value, stages }. Each secret's stages are its own. */
  readonly stored = new StoredVersions();
  /** Target name -> fingerprint -> consumer. */
  readonly accepted = new Map<string, Map<string, string>>();
  readonly revoked = new Set<string>();
  /** Every value targets were given, in order (tests search for them where they must not be). */
  readonly deployedValues: string[] = [];
  /** Issued values by issuer serial, for invariant checks. */
  readonly issued = new Map<string, string>();
  /** Ordered detail: which fingerprint a target verified, which serial the issuer revoked. */
  readonly events: Array<{ call: string; fingerprint?: string; serial?: string }> = [];
  /** Delay every call by this much (to widen crash windows). */
  delayMs = 0;
  /** Calls to hold before their effect, each the next one of its name (see hold). */
  private readonly holds: Array<{ call: string; reached: () => void; gate: Promise<void> }> = [];

  /**
   * Holds the next call named `call` before it takes effect, until `release()`: a test gates
   * what happens meanwhile on `reached` (the call has arrived), never on time.
   */
  hold(call: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const arrived = new Promise<void>((resolve) => (reached = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.holds.push({ call, reached, gate });
    return { reached: arrived, release };
  }

  async record(call: string): Promise<void> {
    this.calls.push(call);
    const held = this.holds.findIndex((h) => h.call === call);
    if (held !== -1) {
      const { reached, gate } = this.holds.splice(held, 1)[0]!;
      reached();
      await gate;
    }
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const fault = this.faults.find((f) => f.call === call && f.times > 0);
    if (fault) {
      fault.times -= 1;
      throw new ProviderError(fault.retryable ? 'REKEY_ERR_UNAVAILABLE' : 'REKEY_ERR_DENIED', `injected failure at ${call}`, { provider: 'memory' });
    }
  }

  fail(call: string, times = Infinity, retryable = true): void {
    this.faults.push({ call, times, retryable });
  }

  reset(): void {
    this.calls.length = 0;
    this.faults.length = 0;
  }

  /** Every value ever issued, for leak checks. */
  values(): string[] {
    return [...this.stored.values()].map((v) => v.value.reveal());
  }
}

/**
 * rekey.yaml for `secrets` kept and issued by the memory provider `mem` and delivered to the
 * memory target `edge`, both recording into `journalName`. Each secret's value holds its other
 * settings as YAML flow entries (`grace: 1h, retry: { attempts: 2, backoff: 20ms }`).
 */
export function memoryConfig(journalName: string, secrets: Record<string, string>): string {
  const lines = Object.entries(secrets).map(
    ([name, settings]) => `  ${name}: { store: { provider: mem }, issuer: { provider: mem }, targets: [edge]${settings ? `, ${settings}` : ''} }`,
  );
  return `providers:\n  mem: { type: memory, journal: ${journalName} }\n  edge: { type: memory, journal: ${journalName} }\nsecrets:\n${lines.join('\n')}\n`;
}

export const journals = new Map<string, Journal>();
export function journal(name: string): Journal {
  let j = journals.get(name);
  if (!j) journals.set(name, (j = new Journal()));
  return j;
}

const config = z.object({ journal: z.string().default('default') }).strict();

class MemoryStore implements SecretStore {
  constructor(
    private readonly j: Journal,
    private readonly secret: string,
  ) {}
  /** This secret's versions (a journal may serve several secrets). */
  private entries() {
    return [...this.j.stored.of(this.secret)];
  }
  async writePending(version: VersionRef, value: SecretValue) {
    await this.j.record('store.writePending');
    // A version id belongs to one secret, so its earlier write is among this secret's versions.
    for (const [id, v] of this.entries()) if (v.versionId === version.versionId) return { storeVersionId: id };
    for (const [, v] of this.entries()) v.stages = v.stages.filter((s) => s !== 'pending');
    const id = randomUUID();
    this.j.stored.set(id, { secret: this.secret, versionId: version.versionId, value, stages: ['pending'] });
    return { storeVersionId: id };
  }
  async read(selector: { storeVersionId: string } | { stage: Stage }) {
    await this.j.record('store.read');
    const entry = 'stage' in selector ? this.entries().find(([, v]) => v.stages.includes(selector.stage))?.[1] : this.j.stored.get(selector.storeVersionId);
    if (!entry) throw new ProviderError('REKEY_ERR_NOT_FOUND', 'no such version', { provider: 'memory' });
    return entry.value;
  }
  async promote(next: { storeVersionId: string }, previous: { storeVersionId: string } | undefined, expected: ExpectedCurrent) {
    await this.j.record('store.promote');
    // Checked after the call's delay or hold, as a store checks a late request when it arrives.
    const holder = this.entries().find(([, v]) => v.stages.includes('current'))?.[0];
    if (holder !== undefined && holder !== next.storeVersionId && holder !== expected?.storeVersionId) {
      throw new ProviderError('REKEY_ERR_CONFLICT', 'the current stage is held by another version than expected', { provider: 'memory', retryable: false });
    }
    const entry = this.j.stored.get(next.storeVersionId);
    if (!entry) throw new ProviderError('REKEY_ERR_NOT_FOUND', 'no such version', { provider: 'memory' });
    // The version named previous (a rollback names the one still in its grace), else whichever was current.
    const wanted = previous && previous.storeVersionId !== next.storeVersionId ? previous.storeVersionId : holder;
    if (holder === next.storeVersionId && (!previous || this.j.stored.get(wanted ?? '')?.stages.includes('previous'))) return;
    for (const [, v] of this.entries()) v.stages = v.stages.filter((s) => s !== 'previous' && s !== 'current');
    const demoted = wanted !== undefined && wanted !== next.storeVersionId ? this.j.stored.get(wanted) : undefined;
    if (demoted) demoted.stages = ['previous'];
    entry.stages = ['current'];
  }
  async destroy(version: { storeVersionId: string }, _call?: Call, options?: { undoPromotion?: boolean }) {
    await this.j.record('store.destroy');
    // Checked after the call's delay or hold, in the same synchronous step as the destroy.
    const entry = this.j.stored.get(version.storeVersionId);
    if (entry?.stages.includes('current')) {
      if (!options?.undoPromotion) throw new ProviderError('REKEY_ERR_INVALID', 'refusing to destroy the version that holds the current stage', { provider: 'memory' });
      // Undoing its promotion: current goes back to the version that held previous, if any, or away.
      const before = this.entries().find(([id, v]) => id !== version.storeVersionId && v.stages.includes('previous'))?.[1];
      if (before) before.stages = ['current'];
    }
    if (entry) entry.stages = [];
    this.j.stored.delete(version.storeVersionId);
  }
  async list(): Promise<StoredVersion[]> {
    await this.j.record('store.list');
    return this.entries().map(([id, v]) => ({ storeVersionId: id, versionId: v.versionId, stages: v.stages }));
  }
}

class MemoryIssuer implements Issuer {
  constructor(private readonly j: Journal) {}
  async issue() {
    await this.j.record('issue');
    const serial = randomUUID();
    const value = `mem_${randomUUID().replaceAll('-', '')}`;
    this.j.issued.set(serial, value);
    return { value: SecretValue.of(value), state: { serial } };
  }
  async verify(version: VersionRef & { issuerState: { serial?: unknown } }) {
    await this.j.record('issuer.verify');
    if (this.j.revoked.has(String(version.issuerState.serial))) throw new ProviderError('REKEY_ERR_VERIFY_FAILED', 'revoked', { provider: 'memory' });
  }
  async revoke(version: VersionRef & { issuerState: { serial?: unknown } }) {
    await this.j.record('revoke');
    this.j.revoked.add(String(version.issuerState.serial));
    this.j.events.push({ call: 'revoke', serial: String(version.issuerState.serial) });
  }
}

class MemoryTarget implements Target {
  constructor(
    private readonly j: Journal,
    private readonly name: string,
  ) {}
  private set() {
    let s = this.j.accepted.get(this.name);
    if (!s) this.j.accepted.set(this.name, (s = new Map<string, string>()));
    return s;
  }
  async deploy(version: VersionRef, value: SecretValue) {
    await this.j.record(`deploy:${this.name}`);
    this.j.deployedValues.push(value.reveal());
    this.set().set(version.fingerprint, version.consumer);
  }
  async verify(version: VersionRef) {
    await this.j.record(`verify:${this.name}`);
    if (!this.set().has(version.fingerprint)) throw new ProviderError('REKEY_ERR_VERIFY_FAILED', 'not deployed', { provider: this.name });
    this.j.events.push({ call: `verify:${this.name}`, fingerprint: version.fingerprint });
  }
  async retire(version: VersionRef) {
    await this.j.record(`retire:${this.name}`);
    this.set().delete(version.fingerprint);
  }
  /** A read: not journaled, so the drift check never changes a recorded call sequence. */
  inspect(): Promise<Inspection> {
    return Promise.resolve({ entries: [...this.set().entries()].map(([fingerprint, consumer]) => ({ fingerprint, consumer })), holds: 'all' });
  }
}

export const memoryProvider = defineProvider({
  type: 'memory',
  summary: 'Test-only: store, issuer and target in memory, recording calls',
  config,
  bindings: { store: z.object({}).strict(), issuer: z.object({}).strict(), target: z.object({}).strict() },
  open: (c, ctx) => {
    const j = journal(c.journal);
    return { store: (binding) => new MemoryStore(j, binding.secret), issuer: () => new MemoryIssuer(j), target: () => new MemoryTarget(j, ctx.name) };
  },
});
