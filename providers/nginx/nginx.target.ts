/**
 * nginx as a target: API keys are lines of a map file that nginx.conf includes in a
 * `map` block (key -> consumer id). Each change writes the file atomically, runs
 * `nginx -t` on the real config, puts the previous file back if the test fails, and
 * otherwise reloads the master and waits until the new map serves every new request.
 */
import { readFileIfExists, writeFileAtomic } from '../../src/core/kit/atomic-file.js';
import { serialized, sharedRead } from '../../src/core/kit/serial.js';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import type { Fingerprinter } from '../../src/core/fingerprint.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Inspection, Target, VersionRef } from '../../src/core/ports.js';
import { probeKey, type ProbeConfig } from '../../src/core/kit/probe.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { checkMapEntry } from '../../src/core/kit/map-entry.js';
import { unlink } from 'node:fs/promises';
import { MapFile } from './nginx.map.js';
import { reload, ReloadError, testConfig, type NginxProcessOptions } from './nginx.process.js';

export interface NginxTargetOptions {
  provider: string;
  map: string;
  process: NginxProcessOptions;
  probe: ProbeConfig | undefined;
  fingerprint: Fingerprinter;
  log: Logger;
}

export class NginxTarget implements Target {
  readonly #o: NginxTargetOptions;

  constructor(options: NginxTargetOptions) {
    this.#o = options;
  }

  /** Adds key -> consumer (or corrects the consumer), tests, reloads. Idempotent. */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    checkMapEntry(version, value, 'nginx', this.#o.provider);
    await this.#change(call, (map) => map.upsert({ key: value.reveal(), consumer: version.consumer }));
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, map: this.#o.map }, 'nginx: key deployed');
  }

  /** Probes through nginx when `probe` is set; otherwise checks the map file holds the key. */
  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    if (this.#o.probe) return probeKey(this.#o.probe, value, call, this.#o.provider);
    const map = MapFile.parse((await this.#read()) ?? '');
    if (!map.entries().some((entry) => entry.key === value.reveal())) {
      throw this.#error('REKEY_ERR_VERIFY_FAILED', `map ${this.#o.map} does not hold version ${version.number} of ${version.secret}`);
    }
  }

  /** Removes every entry whose key has the version's fingerprint, tests, reloads. Absent is success. */
  async retire(version: VersionRef, call: Call): Promise<void> {
    await this.#change(call, (map) => map.remove((entry) => this.#o.fingerprint(entry.key) === version.fingerprint), { restore: false });
    this.#o.log.info({ versionId: version.versionId, fingerprint: version.fingerprint, map: this.#o.map }, 'nginx: key retired');
  }

  /** The keys of the map file (what nginx serves once the last reload has finished, and after a restart). */
  inspect(_call: Call): Promise<Inspection> {
    return sharedRead(`nginx:${this.#o.map}`, async () => {
      const map = MapFile.parse((await this.#read()) ?? '');
      return { entries: map.entries().map((entry) => ({ fingerprint: this.#o.fingerprint(entry.key), consumer: entry.consumer })), holds: 'all' as const };
    });
  }

  /**
   * Writes the edited map, tests and reloads. When nginx -t fails, a deploy's file is put back
   * (its new line may be what nginx rejects); a retirement's is not (removing lines cannot be, and
   * putting the key back would let the reload after the repair, or a restart, load it again).
   */
  async #change(call: Call, edit: (map: MapFile) => MapFile, o: { restore: boolean } = { restore: true }): Promise<void> {
    // One change at a time per nginx master: a reload must finish before the next begins.
    await serialized(`nginx:${this.#o.process.pidFile}`, async () => {
      const before = await this.#read();
      const next = edit(MapFile.parse(before ?? ''));
      const text = next.render();
      if (text !== before) await this.#write(text);
      // Test even when the file did not change: a retry must not reload a config nginx rejects.
      const verdict = await this.#test(call);
      if (!verdict.ok) {
        if (o.restore && text !== before) await this.#restore(before);
        const file = o.restore ? `${this.#o.map} was put back as it was` : `${this.#o.map} keeps the key out, for the next reload`;
        throw this.#error('REKEY_ERR_INVALID', `nginx -t rejected the configuration, so nginx was not reloaded and ${file}: ${describeNginxOutput(verdict.output)}`);
      }
      await this.#reload(call);
    });
  }

  async #read(): Promise<string | undefined> {
    try {
      return await readFileIfExists(this.#o.map);
    } catch (error) {
      throw this.#fileError('read', error);
    }
  }

  async #write(text: string): Promise<void> {
    try {
      await writeFileAtomic(this.#o.map, text);
    } catch (error) {
      throw this.#fileError('write', error);
    }
  }

  async #restore(before: string | undefined): Promise<void> {
    try {
      if (before === undefined) await unlink(this.#o.map);
      else await writeFileAtomic(this.#o.map, before);
    } catch (error) {
      throw this.#fileError('restore', error);
    }
  }

  async #test(call: Call): Promise<{ ok: boolean; output: string }> {
    try {
      return await testConfig(this.#o.process, call.signal);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw this.#error('REKEY_ERR_INVALID', `the nginx binary ${this.#o.process.binary} was not found`, error);
      if (code === 'ABORT_ERR') throw this.#error('REKEY_ERR_TIMEOUT', 'nginx -t did not finish in time', error);
      throw this.#error('REKEY_ERR_UNAVAILABLE', `nginx -t could not run (${code ?? 'error'})`, error);
    }
  }

  async #reload(call: Call): Promise<void> {
    try {
      const { draining } = await reload(this.#o.process, call.signal);
      if (draining > 0) this.#o.log.warn({ map: this.#o.map, draining }, 'nginx: old workers still finishing long requests after the reload');
    } catch (error) {
      if (error instanceof ReloadError) {
        const code: ErrorCode = error.kind === 'denied' ? 'REKEY_ERR_DENIED' : 'REKEY_ERR_UNAVAILABLE';
        throw this.#error(code, error.message, error);
      }
      if (call.signal.aborted) throw this.#error('REKEY_ERR_TIMEOUT', 'the nginx reload did not finish in time', error);
      throw this.#error('REKEY_ERR_UNAVAILABLE', 'the nginx reload failed', error);
    }
  }

  #fileError(action: string, error: unknown): ProviderError {
    const code = (error as NodeJS.ErrnoException).code;
    const kind: ErrorCode = code === 'EACCES' || code === 'EPERM' ? 'REKEY_ERR_DENIED' : 'REKEY_ERR_UNAVAILABLE';
    return this.#error(kind, `could not ${action} map file ${this.#o.map} (${code ?? 'error'})`, error);
  }

  #error(code: ErrorCode, message: string, cause?: unknown): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider, cause });
  }
}

/**
 * Where nginx -t found its errors (file and line of each emerg/alert/crit/error line), never
 * nginx's words: they quote the offending token, which may be a key, and a token holding an
 * escaped quote cannot be told apart from its surroundings. nginx -t run by hand says why.
 */
export function describeNginxOutput(output: string): string {
  const places = output
    .split('\n')
    .filter((line) => /\[(emerg|alert|crit|error)\]/.test(line))
    // nginx ends each such line with " in <file>:<line>" (ngx_conf_log_error).
    .flatMap((line) => / in (\/\S*:\d+)$/.exec(line.trimEnd())?.slice(1) ?? []);
  const where = places.length ? `at ${[...new Set(places)].join(', ')}` : 'at no file and line it named';
  return `errors ${where} (not repeated here: nginx quotes the offending token, which may be a key; run nginx -t for the reason)`;
}
