import type { SecretPolicy } from './model.js';
import type { Issuer, SecretStore, Target } from './ports.js';

/** A managed secret's policy and its provider instances, as the current config builds them. */
export interface ResolvedSecret {
  policy: SecretPolicy;
  store: SecretStore;
  issuer: Issuer;
  /** Keyed by target instance name. */
  targets: ReadonlyMap<string, Target>;
}

/** Builds (and caches) provider instances from the latest applied config. */
export interface ProviderResolver {
  /** @throws RekeyError REKEY_ERR_UNKNOWN when the secret is not in the config. */
  resolve(secret: string): Promise<ResolvedSecret>;
}
