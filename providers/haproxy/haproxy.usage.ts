/**
 * HAProxy as a usage source: two stick tables that haproxy.cfg fills for every accepted key
 * (README.md "Usage"): `keys`, keyed by the key, storing `http_req_cnt` and `http_err_cnt`;
 * `sources`, keyed by `<key>@<network>`, storing `http_req_cnt`. One `show table` of each per
 * read. A source counts in a window when its entry is new or its count moved since the
 * previous read of this process, so no expiry arithmetic is needed and HAProxy's own table
 * expiry bounds its memory. Keys are fingerprinted here, once per key per read, and never
 * leave this module.
 */
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Call, UsageCounter, UsageReading } from '../../src/core/ports.js';

/** The tables haproxy.cfg tracks keys in. */
export interface StickTables {
  keys: string;
  sources: string;
}

/** One `show table` entry: `0x55ff...: key=<key> use=0 exp=3599640 http_req_cnt=4 http_err_cnt=0`. */
interface TableEntry {
  key: string;
  data: Map<string, number>;
}

/** Parses the answer to `show table <name>`, skipping what is not an entry (the header, blank lines). */
export function parseTable(answer: string): TableEntry[] {
  const entries: TableEntry[] = [];
  for (const line of answer.split('\n')) {
    const match = /^0x[0-9a-fA-F]+: key=(\S+) (.*)$/.exec(line);
    if (!match) continue;
    const data = new Map<string, number>();
    for (const field of match[2]!.split(' ')) {
      const eq = field.lastIndexOf('=');
      if (eq > 0) data.set(field.slice(0, eq), Number(field.slice(eq + 1)));
    }
    entries.push({ key: match[1]!, data });
  }
  return entries;
}

/**
 * Reads both tables and turns them into counters per fingerprint. One per provider instance
 * (every binding shares it): it holds the sources table's counts of the previous read (by entry
 * key: a key and a network), which is what makes a read incremental.
 */
export class HaproxyUsage {
  /** Undefined before this instance's first read. */
  #previousSources: Map<string, number> | undefined;

  constructor(
    private readonly tables: StickTables,
    private readonly fingerprint: Fingerprinter,
  ) {}

  /** `command` runs one Runtime API command (the target's, with its error mapping). */
  async read(command: (line: string, call: Call) => Promise<string>, call: Call): Promise<UsageReading> {
    // HAProxy dumps entries as this process reads them: a starved reader spreads the capture over the read.
    const startedAt = new Date();
    const [keys, sources] = await Promise.all([command(`show table ${this.tables.keys}`, call), command(`show table ${this.tables.sources}`, call)]);
    const at = new Date();
    const active = new Map<string, number>();
    const seen = new Map<string, number>();
    // A first read cannot tell which networks moved: every entry of the table (up to its expire) would
    // look new, which a new instance (a new config revision) under a collector keeping its previous read
    // would report as one window's networks. It reports none (sources undefined) and sets where they start.
    const first = !this.#previousSources;
    for (const entry of parseTable(sources)) {
      const count = entry.data.get('http_req_cnt') ?? 0;
      seen.set(entry.key, count);
      if (first || this.#previousSources!.get(entry.key) === count) continue;
      const key = entry.key.slice(0, entry.key.lastIndexOf('@'));
      active.set(key, (active.get(key) ?? 0) + 1);
    }
    this.#previousSources = seen;
    const counters: UsageCounter[] = parseTable(keys).map((entry) => ({
      fingerprint: this.fingerprint(entry.key),
      requests: entry.data.get('http_req_cnt') ?? 0,
      errors: entry.data.get('http_err_cnt') ?? 0,
      sources: first ? undefined : (active.get(entry.key) ?? 0),
    }));
    return { at, startedAt, counters };
  }
}
