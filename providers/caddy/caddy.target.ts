/**
 * Caddy as a target: API keys are the `mappings` of one `map` handler, identified by its
 * `@id`, that turns the key header into a consumer placeholder; the operator's routes
 * around it answer 401 when the placeholder is empty and pass the consumer upstream.
 * Every change reads the handler with its ETag and writes only `/id/<handler>/mappings`
 * with If-Match, so concurrent edits of the config are never overwritten.
 */
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Inspection, JsonValue, Target, VersionRef } from '../../src/core/ports.js';
import { sharedRead } from '../../src/core/kit/serial.js';
import { probeKey, type ProbeConfig } from '../../src/core/kit/probe.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { checkMapEntry } from '../../src/core/kit/map-entry.js';
import { AdminTransportError, adminRequest, type AdminAnswer, type AdminEndpoint } from './admin-api.js';

export interface CaddyTargetOptions {
  provider: string;
  endpoint: AdminEndpoint;
  handler: string;
  probe: ProbeConfig | undefined;
  timeoutMs: number;
  fingerprint: Fingerprinter;
  log: Logger;
}

/** One entry of the map handler (Caddy's MappingSet): outputs line up with `destinations`. */
interface Mapping {
  input: string;
  outputs: JsonValue[];
}

interface MapHandler {
  handler: string;
  destinations?: string[];
  mappings?: Mapping[];
}

/** If-Match lost to a concurrent change (or a write met the admin server's swap) this many times in a row: give up. */
const MAX_ATTEMPTS = 5;
/** A read reset or refused while Caddy swaps its admin server is sent again, this many times in all. */
const READ_ATTEMPTS = 3;

/**
 * Caddy replaces its admin server on every config load (each change of ours included): a
 * request that meets the swap is reset or refused.
 */
function metSwap(code: string | undefined): boolean {
  return code === 'ECONNRESET' || code === 'ECONNREFUSED';
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class CaddyTarget implements Target {
  readonly #o: CaddyTargetOptions;

  constructor(options: CaddyTargetOptions) {
    this.#o = options;
  }

  /** Adds input=key -> consumer (or corrects the consumer). Idempotent. */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    checkMapEntry(version, value, 'Caddy', this.#o.provider);
    const key = value.reveal();
    await this.#update(call, (mappings, destinations) => {
      const existing = mappings.find((m) => m.input === key);
      if (existing?.outputs[0] === version.consumer) return undefined;
      if (existing) return mappings.map((m) => (m === existing ? { ...m, outputs: [version.consumer, ...m.outputs.slice(1)] } : m));
      // Outputs line up with the handler's destinations; null leaves the others unset.
      const outputs: JsonValue[] = [version.consumer, ...Array.from({ length: Math.max(0, destinations - 1) }, () => null)];
      return [...mappings, { input: key, outputs }];
    });
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, handler: this.#o.handler }, 'caddy: key deployed');
  }

  /** Probes through Caddy when `probe` is set; otherwise checks the live config holds the key. */
  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    if (this.#o.probe) return probeKey(this.#o.probe, value, call, this.#o.provider);
    const { handler } = await this.#read(call);
    if (!(handler.mappings ?? []).some((m) => m.input === value.reveal())) {
      throw this.#error('REKEY_ERR_VERIFY_FAILED', `map handler ${this.#o.handler} does not hold version ${version.number} of ${version.secret}`);
    }
  }

  /** Removes every mapping whose input has the version's fingerprint. Absent is success. */
  async retire(version: VersionRef, call: Call): Promise<void> {
    await this.#update(call, (mappings) => {
      const kept = mappings.filter((m) => this.#o.fingerprint(m.input) !== version.fingerprint);
      return kept.length === mappings.length ? undefined : kept;
    });
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, handler: this.#o.handler }, 'caddy: key retired');
  }

  /** Every plain (non-regex) input of the handler, by fingerprint, with its consumer: one GET for every binding of the handler. */
  inspect(call: Call): Promise<Inspection> {
    return sharedRead(`caddy:${JSON.stringify(this.#o.endpoint)}:${this.#o.handler}`, async () => {
      const { handler } = await this.#read(call);
      const entries = (handler.mappings ?? [])
        .filter((m) => !m.input.startsWith('~'))
        .map((m) => ({ fingerprint: this.#o.fingerprint(m.input), consumer: typeof m.outputs[0] === 'string' ? m.outputs[0] : undefined }));
      return { entries, holds: 'all' as const };
    });
  }

  /**
   * Read-modify-write of the handler's mappings under If-Match. `change` returns the new
   * list, or undefined when nothing needs to change.
   */
  async #update(call: Call, change: (mappings: Mapping[], destinations: number) => Mapping[] | undefined): Promise<void> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const { handler, etag } = await this.#read(call);
      const next = change(handler.mappings ?? [], handler.destinations?.length ?? 1);
      if (!next) return;
      // PATCH replaces an existing field; PUT creates it when the handler has none yet.
      const write = { method: handler.mappings === undefined ? 'PUT' : 'PATCH', path: `/id/${this.#o.handler}/mappings` };
      let answer: AdminAnswer;
      try {
        answer = await this.#request(call, { ...write, body: next as unknown as JsonValue, ifMatch: etag });
      } catch (error) {
        // A write that met the swap (another change's, a concurrent deploy's) may or may not have
        // been made: the next attempt reads first, and `change` makes nothing already made.
        const swapped = error instanceof ProviderError && error.cause instanceof AdminTransportError && metSwap(error.cause.code);
        if (!swapped || attempt === MAX_ATTEMPTS || call.signal.aborted) throw error;
        await pause(20 * attempt);
        continue;
      }
      if (answer.status === 412) continue;
      if (answer.status >= 200 && answer.status < 300) return;
      throw this.#answerError(write, answer);
    }
    throw this.#error('REKEY_ERR_CONFLICT', `Caddy's config kept changing under ${this.#o.handler} (${MAX_ATTEMPTS} attempts)`);
  }

  async #read(call: Call): Promise<{ handler: MapHandler; etag: string | undefined }> {
    const read = { method: 'GET', path: `/id/${this.#o.handler}` };
    const answer = await this.#request(call, read);
    if (answer.status !== 200) throw this.#answerError(read, answer);
    const handler = JSON.parse(answer.body) as MapHandler | null;
    if (!handler || handler.handler !== 'map') {
      throw this.#error('REKEY_ERR_INVALID', `Caddy's @id ${this.#o.handler} is not a map handler (found ${handler?.handler ?? 'nothing'})`);
    }
    return { handler, etag: answer.etag };
  }

  async #request(call: Call, o: { method: string; path: string; body?: JsonValue; ifMatch?: string }): Promise<AdminAnswer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await adminRequest(this.#o.endpoint, { ...o, signal: call.signal, timeoutMs: this.#o.timeoutMs });
      } catch (error) {
        const code = error instanceof AdminTransportError ? error.code : undefined;
        // Reads are safe to send again; a write is sent again by #update, after a read.
        if (o.method === 'GET' && metSwap(code) && attempt < READ_ATTEMPTS && !call.signal.aborted) {
          await pause(20 * attempt);
          continue;
        }
        throw this.#transportError(code, error);
      }
    }
  }

  /** A request that got no answer (Node's errno `code`), as a ProviderError. */
  #transportError(code: string | undefined, error: unknown): ProviderError {
    if (code === 'EACCES' || code === 'EPERM') return this.#error('REKEY_ERR_DENIED', "no permission to open Caddy's admin socket", error);
    if (code === 'ETIMEDOUT' || code === 'ABORT_ERR') return this.#error('REKEY_ERR_TIMEOUT', "Caddy's admin API did not answer in time", error);
    return this.#error('REKEY_ERR_UNAVAILABLE', `Caddy's admin API cannot be reached (${code ?? 'unknown error'})`, error);
  }

  /**
   * Maps an admin API error answer to a code. The message names the call, the status and the
   * handler's @id, never Caddy's text: Caddy quotes the config it refused, keys and all.
   */
  #answerError(request: { method: string; path: string }, answer: AdminAnswer): ProviderError {
    // Caddy's text is only read, to tell a missing @id from other refusals.
    if (/unknown object ID/i.test(answer.body)) {
      return this.#error('REKEY_ERR_INVALID', `Caddy's config has no object with @id ${this.#o.handler}: add a map handler with that @id`);
    }
    const where = `Caddy's admin API ${request.method} ${request.path} answered ${answer.status}`;
    if (answer.status === 401 || answer.status === 403) return this.#error('REKEY_ERR_DENIED', `${where}: it refused rekey's request (check the admin API's access control)`);
    if (answer.status === 429) return this.#error('REKEY_ERR_THROTTLED', where);
    if (answer.status >= 500) return this.#error('REKEY_ERR_UNAVAILABLE', where);
    return this.#error('REKEY_ERR_INVALID', `${where}: Caddy refused the change to handler @id ${this.#o.handler} (its log says why)`);
  }

  #error(code: ErrorCode, message: string, cause?: unknown): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider, cause });
  }
}
