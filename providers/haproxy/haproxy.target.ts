/**
 * HAProxy as a target: API keys are entries of a map (key -> consumer id) that haproxy.cfg
 * consults, e.g. `http-request set-var(txn.consumer) req.fhdr(X-Api-Key),map(/etc/haproxy/api-keys.map)`.
 * Live changes go through the Runtime API (add/set/del map, show map), one key at a time
 * and different keys in parallel, so a leaked key's removal never waits behind other keys'
 * changes. After each change the map file is rewritten atomically from `show map` (a burst
 * of changes shares one rewrite), so a restart loads the same keys. A change made alone writes
 * the map its own `show map` and change imply, and then reads the live map once to check it,
 * instead of reading it before the write too.
 */
import { writeFileAtomic } from '../../src/core/kit/atomic-file.js';
import { coalesced, serialized, sharedRead } from '../../src/core/kit/serial.js';
import { ProviderError } from '../../src/core/errors.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Inspection, Target, UsageReading, VersionRef } from '../../src/core/ports.js';
import { probeKey, type ProbeConfig } from '../../src/core/kit/probe.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { checkMapEntry } from '../../src/core/kit/map-entry.js';
import { runtimeCommand, RuntimeTransportError, type RuntimeEndpoint } from './runtime-api.js';
import type { HaproxyUsage } from './haproxy.usage.js';

/**
 * The map value of a throttled key: `throttled:<consumer>`. haproxy.cfg puts keys whose consumer
 * starts with it in its rate-limited class (README.md "Throttling").
 */
export const THROTTLED = 'throttled:';
const consumerOf = (value: string) => (value.startsWith(THROTTLED) ? value.slice(THROTTLED.length) : value);

export interface HaproxyTargetOptions {
  provider: string;
  endpoint: RuntimeEndpoint;
  /** The map's name on the Runtime API (the path haproxy.cfg loads). */
  map: string;
  /** Where to persist the map; undefined when persistence is off. */
  mapFile: string | undefined;
  probe: ProbeConfig | undefined;
  timeoutMs: number;
  fingerprint: Fingerprinter;
  log: Logger;
  /** The usage source (stick tables), shared by every binding of the provider; undefined when not configured. */
  usage: HaproxyUsage | undefined;
}

/** Rewrites of the map file one persist may make while the live map keeps changing. */
const MAX_PERSIST_ROUNDS = 3;

/**
 * Persist calls made in this process per map file (by the coalesced key): a change's own view
 * of the map is written only when no other change asked for a rewrite since (see #persist).
 */
const persistCalls = new Map<string, number>();

/** One line of `show map`, `0x55d0c8a1b2c0 <key> <value>`, without its reference (see retire()). */
interface MapEntry {
  key: string;
  value: string;
}

export class HaproxyTarget implements Target {
  readonly #o: HaproxyTargetOptions;

  constructor(options: HaproxyTargetOptions) {
    this.#o = options;
  }

  /**
   * Adds key -> consumer (or corrects the consumer), then persists. Idempotent. Fails, to be
   * retried, when the rewrite finds the key gone: HAProxy restarted after the add and loaded the
   * file not yet rewritten, and the rewrite follows the live map (as retire(), the other way).
   */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    this.#validate(version, value);
    const key = value.reveal();
    const after = await this.#exclusive(version, async () => {
      const live = await this.#show(call);
      const existing = live.filter((entry) => entry.key === key);
      if (existing.length === 0) {
        await this.#mutate(`add map ${this.#o.map} ${key} ${version.consumer}`, call);
        // `add map` appends: `show map` lists it last.
        return [...live, { key, value: version.consumer }];
      }
      if (existing.some((entry) => consumerOf(entry.value) !== version.consumer)) {
        // `set map` by key updates every entry with that key.
        await this.#mutate(`set map ${this.#o.map} ${key} ${version.consumer}`, call);
        return live.map((entry) => (entry.key === key ? { ...entry, value: version.consumer } : entry));
      }
      return live;
    });
    // Always rewrite: a retry after a failed write must still fix the file. When the map kept
    // changing through every rewrite, #persist checked nothing: read it once more.
    const live = (await this.#persist(after)) ?? (this.#o.mapFile ? await this.#show(call) : undefined);
    if (live && !live.some((entry) => entry.key === key)) {
      throw this.#error('REKEY_ERR_UNAVAILABLE', `version ${version.number} of ${version.secret} is gone from map ${this.#o.map} after its add (HAProxy reloaded the map file before it was rewritten); retry`);
    }
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, map: this.#o.map }, 'haproxy: key deployed');
  }

  /** Probes through HAProxy when `probe` is set; otherwise checks the live map holds the key. */
  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    if (this.#o.probe) return probeKey(this.#o.probe, value, call, this.#o.provider);
    const live = await this.#show(call);
    if (!live.some((entry) => entry.key === value.reveal())) {
      throw new ProviderError('REKEY_ERR_VERIFY_FAILED', `map ${this.#o.map} does not hold version ${version.number} of ${version.secret}`, {
        provider: this.#o.provider,
      });
    }
  }

  /**
   * Deletes every entry whose key has the version's fingerprint, then persists. Absent is
   * success. Fails, to be retried, when the rewrite finds the key live again: HAProxy restarted
   * after the delete and loaded it from the file not yet rewritten, and the rewrite follows the
   * live map.
   */
  async retire(version: VersionRef, call: Call): Promise<void> {
    const after = await this.#exclusive(version, async () => {
      const live = await this.#show(call);
      const doomed = live.filter((entry) => this.#o.fingerprint(entry.key) === version.fingerprint);
      // By key, never by `#<ref>`: a reference is the entry's address, and once another process deletes
      // the entry HAProxy hands that address to the next key added, which a delete by reference would remove.
      for (const key of new Set(doomed.map((entry) => entry.key))) await this.#mutate(`del map ${this.#o.map} ${key}`, call, { absentIsFine: true });
      return live.filter((entry) => !doomed.includes(entry));
    });
    // When the map kept changing through every rewrite, #persist checked nothing: read it once more.
    const live = (await this.#persist(after)) ?? (this.#o.mapFile ? await this.#show(call) : undefined);
    if (live?.some((entry) => this.#o.fingerprint(entry.key) === version.fingerprint)) {
      throw this.#error('REKEY_ERR_UNAVAILABLE', `version ${version.number} of ${version.secret} is back in map ${this.#o.map} after its delete (HAProxy reloaded the map file before it was rewritten); retry`);
    }
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, map: this.#o.map }, 'haproxy: key retired');
  }

  /** Every key of the live map, by fingerprint, with its consumer: one `show map` for every binding of the map. */
  inspect(call: Call): Promise<Inspection> {
    return sharedRead(`haproxy:${JSON.stringify(this.#o.endpoint)}:${this.#o.map}`, async () => ({
      entries: (await this.#show(call)).map((entry) => ({ fingerprint: this.#o.fingerprint(entry.key), consumer: consumerOf(entry.value) })),
      holds: 'all' as const,
    }));
  }

  /** The stick tables' counters (README.md "Usage"); one read for every binding of the provider. */
  readUsage(_windowMs: number, call: Call): Promise<UsageReading> {
    const usage = this.#o.usage;
    if (!usage) throw this.#error('REKEY_ERR_INVALID', `provider ${this.#o.provider} has no stickTables: configured, so it cannot report usage`);
    return sharedRead(`haproxy-usage:${JSON.stringify(this.#o.endpoint)}`, () => usage.read((line, c) => this.#command(line, c), call));
  }

  /** Sets the map value of the version's key to `throttled:<consumer>` or back to `<consumer>`. Absent is success. */
  async throttle(version: VersionRef, throttled: boolean, call: Call): Promise<void> {
    const value = throttled ? `${THROTTLED}${version.consumer}` : version.consumer;
    const after = await this.#exclusive(version, async () => {
      const live = await this.#show(call);
      const entries = live.filter((entry) => entry.value !== value && this.#o.fingerprint(entry.key) === version.fingerprint);
      // By key (every entry with it), not by reference: see retire().
      for (const key of new Set(entries.map((entry) => entry.key))) await this.#mutate(`set map ${this.#o.map} ${key} ${value}`, call, { absentIsFine: true });
      return live.map((entry) => (entries.includes(entry) ? { ...entry, value } : entry));
    });
    await this.#persist(after);
    this.#o.log.warn({ versionId: version.versionId, fingerprint: version.fingerprint, map: this.#o.map, throttled }, 'haproxy: key throttle changed');
  }

  /** Serializes this process's changes to one key of the map (deploy and retire of one version). */
  #exclusive<T>(version: VersionRef, change: () => Promise<T>): Promise<T> {
    return serialized(`haproxy:${this.#o.map}:${version.fingerprint}`, change);
  }

  #validate(version: VersionRef, value: SecretValue): void {
    checkMapEntry(version, value, 'HAProxy', this.#o.provider);
  }

  async #show(call: Call): Promise<MapEntry[]> {
    const answer = await this.#command(`show map ${this.#o.map}`, call);
    const entries: MapEntry[] = [];
    for (const line of answer.split('\n')) {
      if (line === '') continue;
      const match = /^0x[0-9a-fA-F]+ (\S+)(?: (.*))?$/.exec(line);
      if (!match) throw this.#answerError('show map', line);
      entries.push({ key: match[1]!, value: match[2] ?? '' });
    }
    return entries;
  }

  /** Runs add/set/del: HAProxy answers an empty line on success, a message otherwise. */
  async #mutate(command: string, call: Call, options: { absentIsFine?: boolean } = {}): Promise<void> {
    const answer = (await this.#command(command, call)).trim();
    if (answer === '') return;
    // `del map` answers "Key not found.", `set map` "entry not found.".
    if (options.absentIsFine && /^(key|entry) not found/i.test(answer)) return;
    throw this.#answerError(command.split(' ', 2).join(' '), answer);
  }

  async #command(command: string, call: Call): Promise<string> {
    try {
      return await runtimeCommand(this.#o.endpoint, command, call.signal, this.#o.timeoutMs);
    } catch (error) {
      const code = error instanceof RuntimeTransportError ? error.code : undefined;
      if (code === 'EACCES' || code === 'EPERM') {
        throw this.#error('REKEY_ERR_DENIED', `no permission to open the Runtime API socket of map ${this.#o.map} (rekey's user needs read/write on it)`, error);
      }
      if (code === 'ETIMEDOUT' || code === 'ABORT_ERR') throw this.#error('REKEY_ERR_TIMEOUT', 'the Runtime API did not answer in time', error);
      throw this.#error('REKEY_ERR_UNAVAILABLE', `the Runtime API cannot be reached (${code ?? 'unknown error'})`, error);
    }
  }

  /**
   * Turns an unexpected Runtime API answer into an error naming the command (`add map`, `show
   * map`...) and the map, never HAProxy's text: it may quote a key. The text is only read, to
   * tell a map HAProxy has not loaded and a socket without the level rekey needs.
   */
  #answerError(verb: string, answer: string): ProviderError {
    if (/Unknown map identifier/i.test(answer)) {
      return this.#error('REKEY_ERR_INVALID', `HAProxy has no map ${this.#o.map} loaded: haproxy.cfg must use map(${this.#o.map}) with exactly this path`);
    }
    if (/Permission denied/i.test(answer)) {
      return this.#error('REKEY_ERR_DENIED', 'the Runtime API socket refused the command: it needs `level operator` (or admin)');
    }
    return this.#error('REKEY_ERR_UNAVAILABLE', `the Runtime API refused \`${verb} ${this.#o.map}\` (its answer is not repeated: it may quote a key)`);
  }

  /**
   * Brings the map file up to the live map (the Runtime API is the source of truth), one
   * rewrite at a time per file in this process. Another process may rename an older
   * snapshot over ours, so the live map is read again after the rename and the file
   * rewritten until the two agree: whichever process renames last then leaves the file
   * equal to a live map that already holds every change made before its last read.
   *
   * `expected` is the live map as the caller's change left it (its own `show map` with its
   * change applied): the first write uses it instead of reading the map again, when no other
   * caller in this process asked for a rewrite since (a burst reads the map as before). It is
   * only a first guess: the read after the rename decides, as for any snapshot, so a change
   * another process made in between is written by the next round.
   *
   * Returns the live map the file was found equal to, read after the rename; nothing when
   * there is no file, or when the map kept changing.
   */
  async #persist(expected?: MapEntry[]): Promise<MapEntry[] | undefined> {
    const file = this.#o.mapFile;
    if (!file) return undefined;
    // Shared by every caller waiting on this file: no caller's signal may cut it short
    // (each Runtime API command still has its own timeout).
    const call = { signal: new AbortController().signal };
    const endpoint = JSON.stringify(this.#o.endpoint);
    const key = `haproxy:${endpoint}:${this.#o.map}:${file}`;
    const called = (persistCalls.get(key) ?? 0) + 1;
    persistCalls.set(key, called);
    return coalesced(key, async () => {
      const alone = expected !== undefined && persistCalls.get(key) === called;
      let entries = alone ? expected : await this.#show(call);
      // A first guess that another process's change made wrong costs a round of its own.
      for (let round = 0; round < MAX_PERSIST_ROUNDS + (alone ? 1 : 0); round++) {
        const text = this.#render(entries);
        await this.#write(file, text);
        entries = await this.#show(call);
        if (this.#render(entries) === text) return entries;
      }
      // Still changing: whoever is changing it rewrites the file after its own change.
      this.#o.log.debug({ map: this.#o.map, file }, 'haproxy: map kept changing while the file was rewritten');
      return undefined;
    });
  }

  #render(entries: MapEntry[]): string {
    return (
      `# Managed by rekey (HAProxy target ${this.#o.provider}): rewritten from the Runtime API after every change.\n` +
      `# It holds API keys: keep it readable by HAProxy only. Edits made here are overwritten.\n` +
      entries.map((entry) => `${entry.key} ${entry.value}\n`).join('')
    );
  }

  async #write(file: string, text: string): Promise<void> {
    try {
      await writeFileAtomic(file, text);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const kind = code === 'EACCES' || code === 'EPERM' ? 'REKEY_ERR_DENIED' : 'REKEY_ERR_UNAVAILABLE';
      throw this.#error(kind, `could not rewrite map file ${file} (${code ?? 'error'}); the live map is changed, a restart would lose the change`, error);
    }
  }

  #error(code: ConstructorParameters<typeof ProviderError>[0], message: string, cause?: unknown): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider, cause });
  }
}
