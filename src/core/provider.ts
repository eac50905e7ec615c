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
import type { Authenticator, Call, Issuer, SecretStore, Target } from './ports.js';
import type { RedisEndpoint } from './redis-endpoint.js';
import type { SecretValue } from './secret-value.js';

export type Role = 'store' | 'issuer' | 'target' | 'authenticator';

/** What rekey hands a provider when it opens an instance. */
export interface ProviderContext {
  /** The instance's name: its key under `providers:` (or its type, for an inline issuer). */
  name: string;
  /** Bound with the instance's name (`provider`): a binding adds only what it lacks (`secret`). */
  log: Logger;
  /** Fingerprints a value exactly as rekey records it. */
  fingerprint: Fingerprinter;
  /** Resolves a `${env:NAME}` reference. @throws RekeyError REKEY_ERR_CONFIG when unset. */
  credential(ref: CredentialRef): SecretValue;
  /** rekey's own PostgreSQL, for providers that keep state there (the local store). */
  databaseUrl: string;
  /** rekey's own Redis (REDIS_URL, parsed), for providers that publish there (redis-keyset). */
  redis: RedisEndpoint;
  /**
   * rekey's own sealing key (REKEY_LOCAL_STORE_KEY), for the store that keeps values in rekey's
   * PostgreSQL. A config cannot name it with `${env:...}`: this is the only way to it.
   * @throws RekeyError REKEY_ERR_CONFIG when it is not set.
   */
  storeKey(): SecretValue;
  /**
   * The values of a managed secret's versions that are live for verifying: the current one
   * first, then the previous one while its grace lasts. Never a pending, compromised, retired
   * or revoked version. For authenticators that check credentials against a secret rekey
   * itself rotates (attestation-jwt). A version whose value cannot be read is left out (and
   * logged) when another can be read. May answer from an in-process cache: name the version that
   * verified in the subject's `versions`, and rekey re-checks it when it records the hand-out.
   * Values stay in memory; never log them.
   *
   * `recheck`: the caller holds a credential that matched none of the values this gave it, so
   * they are read again (a version promoted a moment ago verifies at once, before the cache
   * hears of it), at most once a second per secret and one read at a time: a credential anyone
   * can send must not drive reads. Within that second the held values are given again.
   * @throws RekeyError REKEY_ERR_UNKNOWN when the secret is not managed; the store's error when no live version can be read.
   */
  liveValues(secret: string, call: Call, recheck?: boolean): Promise<LiveValue[]>;
  /**
   * The managed secret one of whose live versions, as liveValues counts them, is `value`, with
   * its family and client for per-client keys (`clients:`): found by its keyed fingerprint,
   * nothing read from a store. Undefined when none is. For authenticators of keys rekey itself
   * issues (client-key).
   */
  liveSecretOf(value: SecretValue): Promise<LiveSecret | undefined>;
}

/** One live version's value, as ProviderContext.liveValues gives it. */
export interface LiveValue {
  versionId: string;
  value: SecretValue;
}

/** A managed secret as ProviderContext.liveSecretOf finds it. */
export interface LiveSecret {
  /** The live version the value is. */
  versionId: string;
  /** Its name; for per-client keys `<family>/<client>`. */
  secret: string;
  /** Per-client keys: the secret with `clients:` it belongs to, and its client. */
  family: string | undefined;
  client: string | undefined;
}

/** An authenticator's entry under `delivery.authenticators`. */
export interface AuthenticatorBinding<AB> {
  /** Its name under `delivery.authenticators`: grants and the audit log name it. */
  name: string;
  params: AB;
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
export interface ProviderInstance<SB = never, IB = never, TB = never, AB = never> {
  store?(binding: Binding<SB>): SecretStore;
  issuer?(binding: Binding<IB>): Issuer;
  target?(binding: Binding<TB>): Target;
  authenticator?(binding: AuthenticatorBinding<AB>): Authenticator;
  /** Releases connections. Called when the config changes or the process stops. */
  close?(): Promise<void>;
}

export interface ProviderModule<C = unknown, SB = never, IB = never, TB = never, AB = never> {
  /** The `type:` value in rekey.yaml. */
  type: string;
  /** One line for `rekey config schema` and the docs. */
  summary: string;
  /** Schema of the `providers:` entry (without `type`). Use credential() for anything secret. */
  config: ZodType<C>;
  /** Schemas of the per-secret parameters for each role the provider plays. */
  bindings: { store?: ZodType<SB>; issuer?: ZodType<IB>; target?: ZodType<TB>; authenticator?: ZodType<AB> };
  /**
   * Whether its targets can throttle a key (Target.throttle) when they collect usage: a `throttle`
   * usage rule on a secret with a usage-collecting target that cannot is refused when rekey.yaml is
   * validated. Must agree with the targets' own `throttle` method. @defaultValue false
   */
  throttles?: boolean;
  /**
   * Whether its targets are usage sources (Target.readUsage) under `config`: `true`, or what the
   * config lacks to be one (a phrase naming the field). `usage: { interval }` on a providers: entry
   * that is not a usage source is refused when rekey.yaml is validated. Must agree with the
   * targets' own `readUsage`. @defaultValue never a usage source
   */
  usageSource?: true | ((config: C) => true | string);
  /**
   * Whether its usage readings are a key's own: `false` when they count per account or consumer,
   * so that a previous version reports its successor's traffic and never looks unused. `retire:` on
   * a secret with such a target is refused when rekey.yaml is applied (the top-level default, and a
   * revision stored before, pass over it). @defaultValue true
   */
  usagePerKey?: boolean;
  /**
   * Whether its stores can show a secret's rotation policy (SecretStore.describeRotation): `rekey
   * apply` marks a secret for a rotation metadata write only when its store's module says so.
   * Must agree with the stores' own `describeRotation` (the store conformance suite checks it).
   * @defaultValue false
   */
  rotationMetadata?: boolean;
  /**
   * Whether its issuers sign JWTs and publish their public keys (Issuer.signJwt, Issuer.publicKey):
   * a `delivery:` token grant's `signingKey`, or a `publish: jwks` target, of a secret whose
   * issuer's module does not say so is refused when rekey.yaml is applied. Must agree with the
   * issuers' own `signJwt` and `publicKey`. @defaultValue false
   */
  signsJwt?: boolean;
  /**
   * Rotations a fleet (`rekey rotate --all`) starts per second per store instance of this type
   * when `--store-rate` is not given: the store's write quota over the writes a rotation makes
   * there, with room for the removals of an earlier fleet (the provider's README gives the sum).
   * @defaultValue 10
   */
  fleetStartsPerSecond?: number;
  /**
   * What an issuer binding changes upstream that no other managed secret may (postgres-role: its
   * login roles), as names unique within one provider instance. Two managed secrets, or two
   * clients of one, whose issuers on one instance name the same one would undo each other's
   * rotations: such a config is refused when rekey.yaml is applied. @defaultValue nothing exclusive
   */
  issuerOwns?(params: IB): string[];
  /**
   * As `issuerOwns`, for a store binding of the managed secret `secret` (`client` set for per-client
   * keys): the entries it writes (aws-secrets-manager: the secret name, `<name>/<client>` per client;
   * local: its name, by default the managed secret's). @defaultValue nothing exclusive
   */
  storeOwns?(params: SB, client: string | undefined, secret: string): string[];
  /**
   * As `issuerOwns`, for a target binding of the managed secret `secret` (`<family>/<client>` per
   * client): the slots it overwrites with each deploy (kubernetes-secret: its Secret's keys).
   * @defaultValue nothing exclusive (a gateway accepts many keys side by side)
   */
  targetOwns?(params: TB, secret: string): string[];
  /**
   * What a store binding cannot do for the managed secret (`client` set for per-client keys), as a
   * phrase naming the field; refused when rekey.yaml is applied (a revision stored before still
   * loads). aws-secrets-manager: a full ARN cannot be extended with `/<client>`.
   * @defaultValue nothing refused
   */
  storeProblem?(params: SB, client: string | undefined): string | undefined;
  /**
   * As `storeProblem`, for an issuer binding on an instance configured with `config` (postgres-role:
   * `memberOf` naming its own login roles; http: a `{{vars.<key>}}` the binding does not give).
   * @defaultValue nothing refused
   */
  issuerProblem?(params: IB, config: C): string | undefined;
  /**
   * As `storeProblem`, for a target binding of the managed secret `secret` (`<family>/<client>` per
   * client) on an instance configured with `config`: kubernetes-secret, a default Secret name that
   * is none; haproxy, a map binding on an entry with no runtimeApi. @defaultValue nothing refused
   */
  targetProblem?(params: TB, secret: string, config: C): string | undefined;
  open(config: C, ctx: ProviderContext): ProviderInstance<SB, IB, TB, AB>;
}

/** Erased form the registry holds. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyProviderModule = ProviderModule<any, any, any, any, any>;

/** Identity helper that checks a module's types where it is written. */
export function defineProvider<C, SB = never, IB = never, TB = never, AB = never>(
  module: ProviderModule<C, SB, IB, TB, AB>,
): ProviderModule<C, SB, IB, TB, AB> {
  return module;
}

/** How the registry names a provider module without importing it (and its SDK) yet. */
export type ProviderLoader = () => Promise<{ default: AnyProviderModule }>;

/**
 * The provider modules a process may use, each imported on first use: a command imports
 * only the providers its config names (or none), so `rekey keygen` never loads a cloud SDK.
 */
export class ProviderCatalog {
  private readonly loaded = new Map<string, Promise<AnyProviderModule>>();

  constructor(private readonly loaders: Readonly<Record<string, ProviderLoader>>) {}

  /** Every type, without importing anything. */
  get types(): readonly string[] {
    return Object.keys(this.loaders);
  }

  /** This catalog plus modules already imported (test providers; a type given here replaces the listed one). */
  with(modules: readonly AnyProviderModule[]): ProviderCatalog {
    return new ProviderCatalog({ ...this.loaders, ...Object.fromEntries(modules.map((m) => [m.type, () => Promise.resolve({ default: m })])) });
  }

  /**
   * The modules of these types, in the catalog's order; types it does not list are left out
   * (validation reports them with the known ones).
   * @throws Error when a module's own `type` is not the one it is listed under.
   */
  async load(types: Iterable<string>): Promise<AnyProviderModule[]> {
    const wanted = new Set(types);
    return Promise.all(this.types.filter((type) => wanted.has(type)).map((type) => this.module(type)));
  }

  /** Every module (`rekey config schema`). */
  all(): Promise<AnyProviderModule[]> {
    return this.load(this.types);
  }

  private module(type: string): Promise<AnyProviderModule> {
    let module = this.loaded.get(type);
    if (!module) {
      module = this.loaders[type]!().then(({ default: m }) => {
        if (m.type !== type) throw new Error(`provider listed as ${type} declares type ${m.type}`);
        return m;
      });
      this.loaded.set(type, module);
    }
    return module;
  }
}
