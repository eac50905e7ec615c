/**
 * AWS API Gateway as a usage source, coarse (README.md "Usage"): GetUsage reports requests per
 * API key and **UTC day** in a usage plan, nothing finer, no errors and no sources. Each read
 * asks every usage plan of the provider's bindings for yesterday and today (two days, so the
 * requests of the last minutes before midnight are not lost), pages over keys, and adds to a
 * running total per key what each day's count moved since it last saw it: the totals are the
 * cumulative counters Target.readUsage wants, and the window's requests are whatever API Gateway
 * added to its daily counts in the meantime (it updates them with a delay). An instance's first read
 * only sets where the counts start (every total at zero). Keys are matched to
 * versions by the fingerprint tag rekey wrote on each key (one GetApiKeys listing per read).
 * One instance per provider.
 */
import { type APIGatewayClient, type ApiKey, GetUsageCommand } from '@aws-sdk/client-api-gateway';
import type { Call, UsageCounter, UsageReading } from '../../src/core/ports.js';

const DAY_MS = 86_400_000;

/** What a binding lends a read: its client, its listing of every key of the account, its mapping of SDK errors. */
export interface ApiGatewayUsageSource {
  client: APIGatewayClient;
  listKeys(call: Call): Promise<ApiKey[]>;
  aws<T>(what: string, call: Call, run: () => Promise<T>): Promise<T>;
}

export class ApiGatewayUsage {
  /** The usage plans of the provider's bindings (added as bindings are made). */
  readonly plans = new Set<string>();
  /** Per key id: each day's count seen (yesterday and today only). */
  #seen = new Map<string, Map<string, number>>();
  readonly #totals = new Map<string, number>();
  #first = true;

  async read(source: ApiGatewayUsageSource, call: Call): Promise<UsageReading> {
    const at = new Date();
    const [startDate, endDate] = [day(at.getTime() - DAY_MS), day(at.getTime())];
    const [keys, ...usages] = await Promise.all([source.listKeys(call), ...[...this.plans].map((plan) => this.#usage(source, plan, startDate, endDate, call))]);
    const seen = new Map<string, Map<string, number>>();
    // The first read only sets where each key's counts start: a new instance (a new config revision)
    // under a collector that keeps its previous read would otherwise report up to two days of
    // requests as one window (its totals cover yesterday and today, the old instance's every day it read).
    const first = this.#first;
    this.#first = false;
    for (const usage of usages) {
      for (const [keyId, used] of usage) {
        const before = this.#seen.get(keyId);
        const now = seen.get(keyId) ?? new Map<string, number>();
        for (const [date, count] of used) {
          const delta = first ? 0 : count - (before?.get(date) ?? 0);
          this.#totals.set(keyId, (this.#totals.get(keyId) ?? 0) + Math.max(0, delta));
          now.set(date, Math.max(count, now.get(date) ?? 0));
        }
        seen.set(keyId, now);
      }
    }
    this.#seen = seen;
    // Keys gone from every plan (retired) are forgotten.
    for (const keyId of this.#totals.keys()) if (!seen.has(keyId)) this.#totals.delete(keyId);
    const counters: UsageCounter[] = [];
    for (const key of keys) {
      const fingerprint = key.tags?.['rekey:fingerprint'];
      const total = key.id ? this.#totals.get(key.id) : undefined;
      if (fingerprint && total !== undefined) counters.push({ fingerprint, requests: total, errors: 0, sources: undefined });
    }
    return { at, counters, ...(first ? { first } : {}) };
  }

  /** GetUsage of one plan, every page: key id -> (day -> requests used). */
  async #usage(source: ApiGatewayUsageSource, usagePlanId: string, startDate: string, endDate: string, call: Call): Promise<Map<string, Map<string, number>>> {
    const byKey = new Map<string, Map<string, number>>();
    const days = [startDate, endDate];
    let position: string | undefined;
    do {
      const page = await source.aws(`usage of plan ${usagePlanId}`, call, () =>
        source.client.send(new GetUsageCommand({ usagePlanId, startDate, endDate, limit: 1000, position }), { abortSignal: call.signal }),
      );
      for (const [keyId, pairs] of Object.entries(page.items ?? {})) {
        byKey.set(keyId, new Map(pairs.map((pair, i) => [days[i]!, pair[0] ?? 0])));
      }
      position = page.position;
    } while (position);
    return byKey;
  }
}

/** A UTC day as GetUsage names it. */
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
