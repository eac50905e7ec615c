import type { SecretPolicy } from './model.js';
import type { Issuer, SecretStore, Target } from './ports.js';

/** A managed secret's policy and its provider instances, as the current config builds them. */
export interface ResolvedSecret {
  policy: SecretPolicy;
  store: SecretStore;
  issuer: Issuer;
  /** Keyed by target instance name. */
  targets: ReadonlyMap<string, Target>;
  /** The store's and the issuer's provider instance names (an inline issuer's type), for metrics and logs. */
  names: { store: string; issuer: string };
}

/**
 * Builds (and caches) provider instances from the latest applied config; a secret removed
 * from it resolves from the revision it was last applied in, so its live keys stay reachable.
 */
export interface ProviderResolver {
  /** @throws RekeyError REKEY_ERR_UNKNOWN when no applied config ever declared the secret. */
  resolve(secret: string): Promise<ResolvedSecret>;
  /**
   * The secret's policy alone, opening no provider (so no credential is read): what
   * queuing a rotation or a revocation needs. Same lookup as resolve().
   * @throws RekeyError REKEY_ERR_UNKNOWN when no applied config ever declared the secret.
   */
  policy(secret: string): Promise<SecretPolicy>;
}
