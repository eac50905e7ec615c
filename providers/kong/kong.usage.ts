/**
 * Kong as a usage source: the per-consumer request counts of Kong's Prometheus plugin
 * (`per_consumer: true`), read from each node's `/metrics` in the text exposition format
 * (prometheus-text.ts): `kong_http_requests_total{service,route,code,source,workspace,consumer}`
 * (Kong 3.x; `kong_http_status` of Kong 2.x the same). Kong counts per consumer, not per key:
 * each of a consumer's rekey keys reports the consumer's figures (README.md "Usage"). The
 * counters are each node's since it started; this reader adds what moved per node and consumer
 * since its previous read, so a restarted node (its counters back near zero) adds only its new
 * requests and the totals it reports only grow. Kong has no source dimension: `sources` is
 * undefined. One instance per provider.
 */
import type { Call, UsageCounter, UsageReading } from '../../src/core/ports.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { KongAdmin } from './admin-api.js';
import { parseExposition } from './prometheus-text.js';

const METRICS = new Set(['kong_http_requests_total', 'kong_http_status']);

interface KeyAuth {
  key?: string;
  consumer?: { id: string };
  tags?: string[] | null;
}

interface Counts {
  requests: number;
  errors: number;
}

export class KongUsage {
  /** Per metrics URL and consumer username: the counts of the previous read. */
  #previous = new Map<string, Map<string, Counts>>();
  readonly #totals = new Map<string, Counts>();
  /**
   * Per key fingerprint: its consumer's totals when this reader first counted it. A key counts from
   * there, as the collector expects of a key it has not seen (a rotation's new key does not carry
   * its consumer's earlier traffic as one window); keys no longer listed are dropped.
   */
  #starts = new Map<string, Counts>();
  /** Consumer id -> username (stable; looked up once). */
  readonly #usernames = new Map<string, string | null>();

  constructor(
    private readonly admin: KongAdmin,
    private readonly metricsUrls: readonly string[],
    private readonly fingerprint: Fingerprinter,
  ) {}

  async read(call: Call): Promise<UsageReading> {
    const [credentials, ...pages] = await Promise.all([
      this.admin.list<KeyAuth>('/key-auths', { tags: 'rekey' }, call.signal),
      ...this.metricsUrls.map((url) => this.admin.metrics(url, call.signal)),
    ]);
    const at = new Date();
    // A key first counted now gets its consumer's traffic of this window, not what came before it.
    const before = new Map([...this.#totals].map(([consumer, total]) => [consumer, { ...total }]));
    // A node read for the first time only sets where its counts start (see #add).
    const first = this.metricsUrls.some((url) => !this.#previous.has(url));
    this.metricsUrls.forEach((url, i) => this.#add(url, byConsumer(pages[i]!)));
    const counters: UsageCounter[] = [];
    const starts = new Map<string, Counts>();
    for (const credential of credentials) {
      const fingerprint = credential.key ? this.fingerprint(credential.key) : credential.tags?.find((t) => t.startsWith('rekey-fp:'))?.slice('rekey-fp:'.length);
      const username = credential.consumer && (await this.#username(credential.consumer.id, call));
      const total = username ? this.#totals.get(username) : undefined;
      if (!fingerprint || !total) continue;
      const start = this.#starts.get(fingerprint) ?? before.get(username!) ?? { requests: 0, errors: 0 };
      starts.set(fingerprint, start);
      counters.push({ fingerprint, requests: total.requests - start.requests, errors: total.errors - start.errors, sources: undefined });
    }
    this.#starts = starts;
    return { at, counters, ...(first ? { first } : {}) };
  }

  /** Adds what moved on one node since its previous read (all of it when its counter went down: a restart). */
  #add(url: string, now: Map<string, Counts>): void {
    const before = this.#previous.get(url);
    for (const [consumer, counts] of now) {
      const last = before?.get(consumer);
      const reset = !last || counts.requests < last.requests;
      const total = this.#totals.get(consumer) ?? { requests: 0, errors: 0 };
      // A node read for the first time only sets where it starts from.
      if (before) {
        total.requests += counts.requests - (reset ? 0 : last.requests);
        total.errors += Math.max(0, counts.errors - (reset ? 0 : last.errors));
      }
      this.#totals.set(consumer, total);
    }
    this.#previous.set(url, now);
  }

  async #username(id: string, call: Call): Promise<string | null> {
    if (!this.#usernames.has(id)) {
      const answer = await this.admin.request('GET', `/consumers/${encodeURIComponent(id)}`, call.signal);
      this.#usernames.set(id, answer.status === 200 ? ((answer.body as { username?: string | null }).username ?? null) : null);
    }
    return this.#usernames.get(id)!;
  }
}

/** Requests and errors (status 4xx/5xx) per consumer, summed over services, routes and codes. */
function byConsumer(text: string): Map<string, Counts> {
  const counts = new Map<string, Counts>();
  for (const sample of parseExposition(text)) {
    const consumer = sample.labels.get('consumer');
    if (!METRICS.has(sample.name) || !consumer || !Number.isFinite(sample.value)) continue;
    const c = counts.get(consumer) ?? { requests: 0, errors: 0 };
    c.requests += sample.value;
    if (Number(sample.labels.get('code')) >= 400) c.errors += sample.value;
    counts.set(consumer, c);
  }
  return counts;
}
