/**
 * ProviderResolver backed by the latest config revision in PostgreSQL (what `rekey
 * apply` stored). Workers follow apply without a restart: each resolve() checks the
 * latest revision id (cached for a second), and a new revision opens new provider
 * instances; the old ones are closed once in-flight calls have had time to finish.
 *
 * A secret removed from the config resolves from the revision it was last applied in
 * (secrets.bound_revision_id), so leaks, revocations, reconcile and decommission still reach
 * the keys it left live. Providers whose config is unchanged since share the latest
 * generation's instances; others are opened from the bound revision and kept until close().
 */
import { canonicalJson, fromDocument, type LoadedConfig } from './config/load.js';
import { own, type RekeyConfig, type SecretSpec } from './config/schema.js';
import { readCredential } from './config/environment.js';
import { describeError, RekeyError } from './core/errors.js';
import type { Fingerprinter } from './core/fingerprint.js';
import type { Logger } from './core/logger.js';
import type { SecretPolicy } from './core/model.js';
import type { AnyProviderModule, LiveValue, ProviderCatalog, ProviderInstance } from './core/provider.js';
import type { ProviderResolver, ResolvedSecret } from './core/resolved.js';
import type { SecretValue } from './core/secret-value.js';
import type { Db } from './db/client.js';
import { latestRevisionId, revisionDocument } from './db/config-store.js';
import type { Authenticator, Call, Target } from './core/ports.js';
import { liveValues, liveVersionOf } from './core/live-values.js';
import type { StateRepository } from './core/model.js';
import type { RedisEndpoint } from './core/redis-endpoint.js';
import { JwksPublishingTarget } from './jwks/target.js';

export interface ResolverOptions {
  db: Db;
  /** Versions' states, for ProviderContext.liveValues. */
  repo: StateRepository;
  modules: ProviderCatalog;
  log: Logger;
  fingerprint: Fingerprinter;
  databaseUrl: string;
  redis: RedisEndpoint;
  /** rekey's own REKEY_LOCAL_STORE_KEY (ProviderContext.storeKey). */
  storeKey: SecretValue | undefined;
  env?: NodeJS.ProcessEnv;
  /** How long a revision id is trusted before checking for a newer one. @defaultValue 1000 */
  refreshMs?: number;
  /** How long replaced instances stay open for calls already in flight. @defaultValue 120000 */
  retireAfterMs?: number;
}

/** Resolved secrets kept per revision: building one again costs a few objects (its provider instances are shared). */
const RESOLVED_CACHE = 2000;

interface Generation {
  revision: number;
  config: RekeyConfig;
  /** The document's providers as applied (`${env:...}` unresolved): providers are compared on them. */
  providers: Record<string, unknown>;
  /** The provider modules its providers use, by type. */
  modules: ReadonlyMap<string, AnyProviderModule>;
  instances: Map<string, ProviderInstance<unknown, unknown, unknown, unknown>>;
  /** Secrets resolved lately, at most RESOLVED_CACHE (the oldest is dropped): memory stays bounded however many a drift check resolves. */
  secrets: Map<string, ResolvedSecret>;
  authenticators: Map<string, Authenticator>;
}

export class ConfigResolver implements ProviderResolver {
  private generation: Generation | undefined;
  private liveSource: ((secret: string, call: Call, recheck?: boolean) => Promise<LiveValue[]>) | undefined;

  /** ProviderContext.liveValues read from PostgreSQL and the stores, uncached (so every read is a recheck). */
  readonly readLiveValues = (secret: string, call: Call): Promise<LiveValue[]> => liveValues(this.options.repo, this, this.options.log, secret, call);

  /** Makes ProviderContext.liveValues answer from `source` (a server's delivery cache) from now on. */
  useLiveValues(source: (secret: string, call: Call, recheck?: boolean) => Promise<LiveValue[]>): void {
    this.liveSource = source;
  }
  private checkedAt = 0;
  private loading: Promise<Generation> | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Revisions removed secrets are bound to, by id (their instances: providers changed since). */
  private readonly bound = new Map<number, Promise<Generation>>();

  constructor(private readonly options: ResolverOptions) {}

  async resolve(secret: string): Promise<ResolvedSecret> {
    let generation = this.recent() ?? (await this.current());
    let resolved = generation.secrets.get(secret);
    if (!resolved) {
      if (!own(generation.config.secrets, secret)) {
        // Applied a moment ago and not seen yet? Look for a newer revision before failing.
        this.checkedAt = 0;
        generation = await this.current(true);
      }
      const spec = own(generation.config.secrets, secret);
      const latest = generation;
      resolved = spec ? this.build(spec, (name) => this.instance(latest, name)) : await this.resolveRemoved(latest, secret);
      // Cached with the latest revision: a newer one (which may declare the secret again) rebuilds it.
      if (latest.secrets.size >= RESOLVED_CACHE) latest.secrets.delete(latest.secrets.keys().next().value!);
      latest.secrets.set(secret, resolved);
    }
    return resolved;
  }

  /**
   * The secret's policy (schedule, grace, retry, onLeak) without opening any provider, so
   * queuing work needs none of the providers' credentials: `${env:...}` is resolved where
   * the work runs, in the worker.
   */
  async policy(secret: string): Promise<SecretPolicy> {
    let generation = await this.current();
    if (!own(generation.config.secrets, secret)) {
      this.checkedAt = 0; // applied a moment ago and not seen yet?
      generation = await this.current(true);
    }
    return own(generation.config.secrets, secret) ?? (await this.removedSpec(generation, secret)).spec;
  }

  /** A secret no longer in the config, from the revision it was last applied in. */
  private async resolveRemoved(latest: Generation, secret: string): Promise<ResolvedSecret> {
    const { bound, spec } = await this.removedSpec(latest, secret);
    const providerDoc = (g: Generation, name: string) => g.providers[name];
    const unchanged = (name: string) => Object.hasOwn(latest.config.providers, name) && canonicalJson(providerDoc(latest, name)) === canonicalJson(providerDoc(bound, name));
    return this.build(spec, (name) => this.instance(unchanged(name) ? latest : bound, name));
  }

  private async removedSpec(latest: Generation, secret: string): Promise<{ bound: Generation; spec: SecretSpec }> {
    const row = await this.options.db.secret.findUnique({ where: { name: secret }, select: { removedAt: true, boundRevisionId: true } });
    if (!row?.removedAt || row.boundRevisionId === null) {
      throw new RekeyError('REKEY_ERR_UNKNOWN', `${secret} is not in the applied config (revision ${latest.revision})`);
    }
    const bound = await this.boundGeneration(row.boundRevisionId);
    const spec = own(bound.config.secrets, secret);
    if (!spec) throw new RekeyError('REKEY_ERR_UNKNOWN', `${secret} is not in config revision ${bound.revision}, where it was last applied`);
    return { bound, spec };
  }

  private boundGeneration(revision: number): Promise<Generation> {
    let generation = this.bound.get(revision);
    if (!generation) {
      generation = revisionDocument(this.options.db, revision).then((document) => {
        if (!document) throw new RekeyError('REKEY_ERR_UNKNOWN', `config revision ${revision} does not exist`);
        return this.generationOf({ id: revision, document });
      });
      generation.catch(() => this.bound.delete(revision));
      this.bound.set(revision, generation);
    }
    return generation;
  }

  /**
   * The authenticator named `name` under the applied config's `delivery.authenticators`,
   * opened once per config revision.
   * @throws RekeyError REKEY_ERR_UNKNOWN when there is none.
   */
  async authenticator(name: string): Promise<Authenticator> {
    const generation = this.recent() ?? (await this.current());
    let found = generation.authenticators.get(name);
    if (!found) {
      const ref = generation.config.delivery && own(generation.config.delivery.authenticators, name);
      if (!ref) throw new RekeyError('REKEY_ERR_UNKNOWN', `no authenticator named ${name} under delivery.authenticators`);
      found = this.instance(generation, ref.instance).authenticator!({ name, params: ref.params });
      generation.authenticators.set(name, found);
    }
    return found;
  }

  /**
   * The applied config itself (for status and the server's webhook routing). `fresh`: read the
   * latest revision id now, not trusting the one checked up to a second ago (a caller acting on
   * what an apply of a moment ago marked).
   */
  async config(o?: { fresh?: boolean }): Promise<RekeyConfig> {
    return ((!o?.fresh && this.recent()) || (await this.current(!!o?.fresh))).config;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    if (this.generation) await closeAll(this.generation, this.options.log);
    this.generation = undefined;
    for (const generation of await Promise.allSettled(this.bound.values())) {
      if (generation.status === 'fulfilled') await closeAll(generation.value, this.options.log);
    }
    this.bound.clear();
  }

  /**
   * Takes `loaded` as config revision `revision` (the apply that just stored it), so resolving
   * from it needs no read and no second validation of the stored document. Ignored when this
   * resolver already follows that revision or a newer one.
   */
  async adopt(revision: number, loaded: LoadedConfig): Promise<void> {
    if (this.generation && this.generation.revision >= revision) return;
    const generation = await this.generationFrom(revision, loaded);
    if (this.generation && this.generation.revision >= revision) return;
    this.checkedAt = Date.now();
    this.replace(generation);
  }

  /**
   * The latest generation when it was checked less than 80% of refreshMs ago, without waiting:
   * the hot paths (every delivery request resolves three times) take it without an await.
   */
  private recent(): Generation | undefined {
    return this.generation && Date.now() - this.checkedAt < (this.options.refreshMs ?? 1000) * 0.8 ? this.generation : undefined;
  }

  /**
   * The latest generation, checked at most refreshMs ago. A generation past 80% of that age is
   * still answered while the newer revision is read in the background, so a busy process never
   * waits for the poll (every delivery request arriving during it did, once a second); one
   * past its whole age (an idle process) waits for the read, as does `wait` (a caller that
   * must see an apply of a moment ago). A failed background read is logged once; the next
   * caller tries again.
   */
  private async current(wait = false): Promise<Generation> {
    const recent = !wait && this.recent();
    if (recent) return recent;
    const age = Date.now() - this.checkedAt;
    const refreshMs = this.options.refreshMs ?? 1000;
    const usable = this.generation && age < refreshMs && !wait;
    if (!this.loading) {
      this.loading = this.load().finally(() => (this.loading = undefined));
      if (usable) this.loading.catch((error: unknown) => this.options.log.warn({ error: describeError(error) }, 'config revision check failed'));
    }
    return usable ? this.generation! : this.loading;
  }

  private async load(): Promise<Generation> {
    const latest = await latestRevisionId(this.options.db);
    this.checkedAt = Date.now();
    if (latest === undefined) throw new RekeyError('REKEY_ERR_CONFIG', 'no configuration applied yet: run `rekey apply -f rekey.yaml`');
    // The same revision, or a newer one adopted from the apply that stored it while this read ran.
    if (this.generation && this.generation.revision >= latest) return this.generation;
    const generation = await this.generationOf({ id: latest, document: (await revisionDocument(this.options.db, latest))! });
    // Adopted meanwhile (an apply in this process stored a newer revision): keep that one.
    if (this.generation && this.generation.revision >= generation.revision) return this.generation;
    this.replace(generation);
    return generation;
  }

  /** Makes `generation` the latest; the one it replaces is closed once calls in flight have had time to finish. */
  private replace(generation: Generation): void {
    const previous = this.generation;
    this.generation = generation;
    if (previous) {
      this.options.log.info({ from: previous.revision, to: generation.revision }, 'config revision changed');
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void closeAll(previous, this.options.log);
      }, this.options.retireAfterMs ?? 120_000);
      timer.unref();
      this.timers.add(timer);
    }
  }

  private async generationOf(row: { id: number; document: Record<string, unknown> }): Promise<Generation> {
    return this.generationFrom(row.id, await fromDocument(row.document, `config revision ${row.id}`, this.options.modules));
  }

  private async generationFrom(revision: number, loaded: LoadedConfig): Promise<Generation> {
    const modules = await this.options.modules.load(Object.values(loaded.config.providers).map((p) => p.type));
    const providers = (loaded.document.providers ?? {}) as Record<string, unknown>;
    return { revision, config: loaded.config, providers, modules: new Map(modules.map((m) => [m.type, m])), instances: new Map(), secrets: new Map(), authenticators: new Map() };
  }

  private build(spec: SecretSpec, instance: (name: string) => ProviderInstance<unknown, unknown, unknown, unknown>): ResolvedSecret {
    const binding = <P>(params: P) => ({ secret: spec.name, params, client: spec.client });
    const issuer = instance(spec.issuer.instance).issuer!(binding(spec.issuer.params));
    const targets = new Map<string, Target>();
    for (const [name, params] of spec.targetParams) {
      const target = instance(name).target!(binding(params));
      const where = `secrets.${spec.name}.targets.${name}`;
      targets.set(name, spec.publishJwks.has(name) ? new JwksPublishingTarget(target, issuer, this.options.db, this.options.fingerprint, where, spec.name) : target);
    }
    const store = instance(spec.store.instance).store!(binding(spec.store.params));
    return { policy: spec, store, issuer, targets, names: { store: spec.store.instance, issuer: spec.issuer.instance.replace(/^@/, '') } };
  }

  private instance(generation: Generation, name: string): ProviderInstance<unknown, unknown, unknown, unknown> {
    let instance = generation.instances.get(name);
    if (instance) return instance;
    const spec = generation.config.providers[name]!;
    const module = generation.modules.get(spec.type)!;
    const env = this.options.env ?? process.env;
    instance = module.open(spec.config, {
      name,
      log: this.options.log.child({ provider: name }),
      fingerprint: this.options.fingerprint,
      credential: (ref) => readCredential(ref, env, `providers.${name}`),
      databaseUrl: this.options.databaseUrl,
      redis: this.options.redis,
      storeKey: () => {
        if (!this.options.storeKey) throw new RekeyError('REKEY_ERR_CONFIG', `providers.${name}: REKEY_LOCAL_STORE_KEY is not set`);
        return this.options.storeKey;
      },
      liveValues: (secret, call, recheck) => (this.liveSource ?? this.readLiveValues)(secret, call, recheck),
      liveSecretOf: async (value) => {
        const version = await liveVersionOf(this.options.repo, this.options.fingerprint, value);
        const spec = version && own((await this.current()).config.secrets, version.secret);
        return spec && { versionId: version.id, secret: spec.name, family: spec.family, client: spec.client };
      },
    }) as ProviderInstance<unknown, unknown, unknown, unknown>;
    generation.instances.set(name, instance);
    return instance;
  }
}

async function closeAll(generation: Generation, log: Logger): Promise<void> {
  for (const [name, instance] of generation.instances) {
    await instance.close?.().catch((error: Error) => log.warn({ provider: name, error: describeError(error) }, 'closing provider failed'));
  }
}
