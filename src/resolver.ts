/**
 * ProviderResolver backed by the latest config revision in PostgreSQL (what `rekey
 * apply` stored). Workers follow apply without a restart: each resolve() checks the
 * latest revision id (cached for a second), and a new revision opens new provider
 * instances; the old ones are closed once in-flight calls have had time to finish.
 */
import { fromDocument, type LoadedConfig } from './config/load.js';
import type { RekeyConfig, SecretSpec } from './config/schema.js';
import { resolveCredential } from './core/credential.js';
import { describeError, RekeyError } from './core/errors.js';
import type { Fingerprinter } from './core/fingerprint.js';
import type { Logger } from './core/logger.js';
import type { AnyProviderModule, ProviderInstance } from './core/provider.js';
import type { ProviderResolver, ResolvedSecret } from './core/resolved.js';
import type { Db } from './db/client.js';
import type { Target } from './core/ports.js';
import { JwksPublishingTarget } from './jwks-target.js';

export interface ResolverOptions {
  db: Db;
  modules: readonly AnyProviderModule[];
  log: Logger;
  fingerprint: Fingerprinter;
  databaseUrl: string;
  redisUrl: string;
  env?: NodeJS.ProcessEnv;
  /** How long a revision id is trusted before checking for a newer one. @defaultValue 1000 */
  refreshMs?: number;
  /** How long replaced instances stay open for calls already in flight. @defaultValue 120000 */
  retireAfterMs?: number;
}

interface Generation {
  revision: number;
  config: RekeyConfig;
  instances: Map<string, ProviderInstance<unknown, unknown, unknown>>;
  secrets: Map<string, ResolvedSecret>;
}

export class ConfigResolver implements ProviderResolver {
  private generation: Generation | undefined;
  private checkedAt = 0;
  private loading: Promise<Generation> | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly options: ResolverOptions) {}

  async resolve(secret: string): Promise<ResolvedSecret> {
    let generation = await this.current();
    let resolved = generation.secrets.get(secret);
    if (!resolved) {
      if (!generation.config.secrets[secret]) {
        // Applied a moment ago and not seen yet? Look for a newer revision before failing.
        this.checkedAt = 0;
        generation = await this.current();
      }
      const spec = generation.config.secrets[secret];
      if (!spec) throw new RekeyError('REKEY_ERR_UNKNOWN', `${secret} is not in the applied config (revision ${generation.revision})`);
      resolved = this.build(generation, spec);
      generation.secrets.set(secret, resolved);
    }
    return resolved;
  }

  /** The applied config itself (for status and the server's webhook routing). */
  async config(): Promise<RekeyConfig> {
    return (await this.current()).config;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    if (this.generation) await closeAll(this.generation, this.options.log);
    this.generation = undefined;
  }

  private async current(): Promise<Generation> {
    const fresh = Date.now() - this.checkedAt < (this.options.refreshMs ?? 1000);
    if (this.generation && fresh) return this.generation;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async load(): Promise<Generation> {
    const latest = await this.options.db.configRevision.findFirst({ orderBy: { id: 'desc' }, select: { id: true } });
    this.checkedAt = Date.now();
    if (!latest) throw new RekeyError('REKEY_ERR_CONFIG', 'no configuration applied yet: run `rekey apply -f rekey.yaml`');
    if (this.generation?.revision === latest.id) return this.generation;
    const row = (await this.options.db.configRevision.findUnique({ where: { id: latest.id } }))!;
    const loaded: LoadedConfig = fromDocument(row.document as Record<string, unknown>, `config revision ${row.id}`, this.options.modules);
    const previous = this.generation;
    this.generation = { revision: row.id, config: loaded.config, instances: new Map(), secrets: new Map() };
    if (previous) {
      this.options.log.info({ from: previous.revision, to: row.id }, 'config revision changed');
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void closeAll(previous, this.options.log);
      }, this.options.retireAfterMs ?? 120_000);
      timer.unref();
      this.timers.add(timer);
    }
    return this.generation;
  }

  private build(generation: Generation, spec: SecretSpec): ResolvedSecret {
    const instance = (name: string) => this.instance(generation, name);
    const binding = <P>(params: P) => ({ secret: spec.name, params, client: spec.client });
    const issuer = instance(spec.issuer.instance).issuer!(binding(spec.issuer.params));
    const targets = new Map<string, Target>();
    for (const [name, params] of spec.targetParams) {
      const target = instance(name).target!(binding(params));
      const where = `secrets.${spec.name}.targets.${name}`;
      targets.set(name, spec.publishJwks.has(name) ? new JwksPublishingTarget(target, issuer, this.options.db, this.options.fingerprint, where) : target);
    }
    return { policy: spec, store: instance(spec.store.instance).store!(binding(spec.store.params)), issuer, targets };
  }

  private instance(generation: Generation, name: string): ProviderInstance<unknown, unknown, unknown> {
    let instance = generation.instances.get(name);
    if (instance) return instance;
    const spec = generation.config.providers[name]!;
    const module = this.options.modules.find((m) => m.type === spec.type)!;
    const env = this.options.env ?? process.env;
    instance = module.open(spec.config, {
      name,
      log: this.options.log.child({ provider: name }),
      fingerprint: this.options.fingerprint,
      credential: (ref) => resolveCredential(ref, env, `providers.${name}`),
      databaseUrl: this.options.databaseUrl,
      redisUrl: this.options.redisUrl,
    }) as ProviderInstance<unknown, unknown, unknown>;
    generation.instances.set(name, instance);
    return instance;
  }
}

async function closeAll(generation: Generation, log: Logger): Promise<void> {
  for (const [name, instance] of generation.instances) {
    await instance.close?.().catch((error: Error) => log.warn({ provider: name, error: describeError(error) }, 'closing provider failed'));
  }
}
