/**
 * The shape of a provider module (providers/<name>/index.ts). A module declares the
 * schema of its `providers:` entry and of each role's per-secret binding, and opens
 * instances; src/registry.ts lists the modules. Nothing outside a provider's folder
 * switches on its type.
 */
import type { ZodType } from 'zod';
import type { CredentialRef } from './credential.js';
import type { Fingerprinter } from './fingerprint.js';
import type { Logger } from './logger.js';
import type { Issuer, SecretStore, Target } from './ports.js';
import type { SecretValue } from './secret-value.js';

export type Role = 'store' | 'issuer' | 'target';

/** What rekey hands a provider when it opens an instance. */
export interface ProviderContext {
  /** The instance's name: its key under `providers:` (or its type, for an inline issuer). */
  name: string;
  log: Logger;
  /** Fingerprints a value exactly as rekey records it. */
  fingerprint: Fingerprinter;
  /** Resolves a `${env:NAME}` reference. @throws RekeyError REKEY_ERR_CONFIG when unset. */
  credential(ref: CredentialRef): SecretValue;
  /** rekey's own PostgreSQL, for providers that keep state there (the local store). */
  databaseUrl: string;
  /** rekey's own Redis, for providers that publish there (redis-keyset). */
  redisUrl: string;
}

/** Which managed secret (and which of its clients) an instance serves. */
export interface Binding<B> {
  /** The managed secret's name; for per-client keys `<family>/<client>`. */
  secret: string;
  params: B;
  /**
   * Per-client keys (`clients:` in rekey.yaml): the client this managed secret belongs to.
   * A store keeps one value per client: derive the client's entry from the configured name
   * (e.g. `<name>/<client>`).
   */
  client?: string;
}

/** One opened instance; a factory per role it plays. */
export interface ProviderInstance<SB = never, IB = never, TB = never> {
  store?(binding: Binding<SB>): SecretStore;
  issuer?(binding: Binding<IB>): Issuer;
  target?(binding: Binding<TB>): Target;
  /** Releases connections. Called when the config changes or the process stops. */
  close?(): Promise<void>;
}

export interface ProviderModule<C = unknown, SB = never, IB = never, TB = never> {
  /** The `type:` value in rekey.yaml. */
  type: string;
  /** One line for `rekey config schema` and the docs. */
  summary: string;
  /** Schema of the `providers:` entry (without `type`). Use credential() for anything secret. */
  config: ZodType<C>;
  /** Schemas of the per-secret parameters for each role the provider plays. */
  bindings: { store?: ZodType<SB>; issuer?: ZodType<IB>; target?: ZodType<TB> };
  open(config: C, ctx: ProviderContext): ProviderInstance<SB, IB, TB>;
}

/** Erased form the registry holds. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyProviderModule = ProviderModule<any, any, any, any>;

/** Identity helper that checks a module's types where it is written. */
export function defineProvider<C, SB = never, IB = never, TB = never>(
  module: ProviderModule<C, SB, IB, TB>,
): ProviderModule<C, SB, IB, TB> {
  return module;
}
