import { ProviderError } from '../../src/core/errors.js';
import type { LiveSecret } from '../../src/core/provider.js';
import type { Authenticator, Call, Subject } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { ClientKeyBinding } from './client-key.schema.js';

/** Keys longer than this are refused before they are hashed. */
const MAX_KEY_LENGTH = 4096;

/**
 * Authenticates a client of a per-client key family (`clients:` in rekey.yaml) by its own key:
 * the key must be a live version (current, or previous within its grace; never a compromised,
 * retired or revoked one) of one client's managed secret `<family>/<client>`. The key is found
 * by its keyed fingerprint, so nothing is compared byte by byte and no store is read. Revoking
 * one client's version (`rekey revoke <family>/<client> --version N`) refuses that client only.
 * The subject is `<family>/<client>`, with claims `family` and `client`.
 */
export class ClientKeyAuthenticator implements Authenticator {
  constructor(
    private readonly name: string,
    private readonly params: ClientKeyBinding,
    private readonly liveSecretOf: (value: SecretValue) => Promise<LiveSecret | undefined>,
  ) {}

  async authenticate(credential: SecretValue, call: Call): Promise<Subject> {
    call.signal.throwIfAborted();
    const length = credential.reveal().length;
    if (length === 0 || length > MAX_KEY_LENGTH) throw this.denied('malformed');
    const found = await this.liveSecretOf(credential).catch((cause: unknown) => {
      throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: the client keys cannot be looked up`, { provider: this.name, cause });
    });
    // Unknown, not live, or a key of another secret: one reason, so nothing is learnt about which.
    if (!found || found.family !== this.params.secret || !found.client) throw this.denied('unknown key');
    return { id: found.secret, claims: { family: found.family, client: found.client }, versions: [found.versionId] };
  }

  private denied(reason: string): ProviderError {
    return new ProviderError('REKEY_ERR_DENIED', `authenticator ${this.name}: ${reason}`, { provider: this.name });
  }
}
