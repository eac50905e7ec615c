/**
 * HAProxy as a verifier of JWTs (`jwt_verify`, which in 2.6 takes a public key file read when
 * the configuration loads, not a JWKS): a `publish: jwks` target of a jwt-signing-key secret.
 * Each deploy hands it the JWKS document of the secret's live versions (pending, current,
 * previous; a retired or leaked version already left out): their public keys go to the
 * binding's `keyFiles` as PEM, newest first, files beyond them emptied, each file replaced
 * atomically; when any file changed, HAProxy reloads through its master CLI, so the new worker
 * verifies with exactly these keys while the listening sockets stay open.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';
import { writeFileAtomic } from '../../src/core/kit/atomic-file.js';
import { coalesced } from '../../src/core/kit/serial.js';
import type { Logger } from '../../src/core/logger.js';
import type { Call, Target, VersionRef } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { reloadHaproxy } from './master-cli.js';
import type { RuntimeEndpoint } from './runtime-api.js';

export interface HaproxyKeyFilesOptions {
  provider: string;
  masterCli: RuntimeEndpoint;
  keyFiles: string[];
  timeoutMs: number;
  log: Logger;
}

export class HaproxyKeyFilesTarget implements Target {
  readonly #o: HaproxyKeyFilesOptions;

  constructor(options: HaproxyKeyFilesOptions) {
    this.#o = options;
  }

  /**
   * Writes the document's keys to the files, then reloads HAProxy. Idempotent: the reload runs
   * even when the files already hold the keys (a retry after a failed reload must load them).
   */
  async deploy(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    const pems = this.#pems(value);
    for (const [i, file] of this.#o.keyFiles.entries()) {
      const text = pems[i] ?? '';
      if ((await this.#read(file)) !== text) await this.#write(file, text);
    }
    await this.#reload(call);
    this.#o.log.info({ versionId: version.versionId, keys: pems.length }, 'haproxy: public key files published');
  }

  /** The files hold the document's keys (deploy returned only after HAProxy reloaded them). */
  async verify(version: VersionRef, value: SecretValue): Promise<void> {
    const pems = this.#pems(value);
    for (const [i, file] of this.#o.keyFiles.entries()) {
      if ((await this.#read(file)) !== (pems[i] ?? '')) {
        throw this.#error('REKEY_ERR_VERIFY_FAILED', `key file ${file} does not hold the public keys of ${version.secret}'s live versions`);
      }
    }
  }

  /**
   * Nothing to do: a version leaves the files when the document without it is deployed, which
   * is what `publish: jwks` does on retire. A binding without `publish: jwks` never deploys.
   */
  async retire(): Promise<void> {}

  /** The public keys of a JWKS document, as PEM, newest first. */
  #pems(value: SecretValue): string[] {
    let keys: unknown;
    try {
      keys = (JSON.parse(value.reveal()) as { keys?: unknown }).keys;
    } catch {
      keys = undefined;
    }
    // Never quote the value: without publish: jwks it is a private key.
    if (!Array.isArray(keys)) throw this.#error('REKEY_ERR_INVALID', 'keyFiles receive public keys only: list this target with publish: jwks');
    if (keys.length > this.#o.keyFiles.length) {
      throw this.#error('REKEY_ERR_INVALID', `${keys.length} live public keys and ${this.#o.keyFiles.length} keyFiles: add files (and their jwt_verify checks), or a valid token would be refused`);
    }
    return keys.map((jwk) => createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString());
  }

  async #read(file: string): Promise<string | undefined> {
    return readFile(file, 'utf8').catch(() => undefined);
  }

  async #write(file: string, text: string): Promise<void> {
    try {
      await writeFileAtomic(file, text);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw this.#error(code === 'EACCES' || code === 'EPERM' ? 'REKEY_ERR_DENIED' : 'REKEY_ERR_UNAVAILABLE', `could not write key file ${file} (${code ?? 'error'})`, error);
    }
  }

  /** One reload at a time per master in this process; callers arriving meanwhile share the next one. */
  #reload(call: Call): Promise<void> {
    return coalesced(`haproxy-master:${JSON.stringify(this.#o.masterCli)}`, () => reloadHaproxy(this.#o.masterCli, call.signal, this.#o.timeoutMs, this.#o.provider));
  }

  #error(code: ErrorCode, message: string, cause?: unknown): ProviderError {
    return new ProviderError(code, message, { provider: this.#o.provider, cause });
  }
}
