import pg from 'pg';
import { describeError } from '../../src/core/errors.js';
import { decodeKey } from '../../src/core/fingerprint.js';
import { poolTimeouts, type PoolTimeouts, watchConnections } from '../../src/core/kit/sql-pool.js';
import { defineProvider, type ProviderContext, type ProviderInstance } from '../../src/core/provider.js';
import { LocalStore } from './local.store.js';
import { type LocalConfig, localConfig, localStoreBinding, type LocalStoreBinding } from './local.schema.js';
import { sealingKey } from './seal.js';

/** `providers: { vault: { type: local } }` then `store: { provider: vault }` */
export default defineProvider({
  type: 'local',
  summary: "Built-in store: values sealed with AES-256-GCM in rekey's own PostgreSQL",
  config: localConfig,
  bindings: { store: localStoreBinding },
  // Two managed secrets on one entry would move each other's current (as the store below names it).
  storeOwns: ({ name }, client, secret) => [entryName(name, client, secret)],
  open: (config, ctx) => openLocal(config, ctx),
});

/** An instance: one pool on rekey's PostgreSQL. `queryTimeoutMs` is there for tests. */
export function openLocal(config: LocalConfig, ctx: ProviderContext, { queryTimeoutMs }: Pick<PoolTimeouts, 'queryTimeoutMs'> = {}): ProviderInstance<LocalStoreBinding> {
  const key = sealingKey(config.key ? decodeKey(ctx.credential(config.key).reveal(), config.key.name) : decodeKey(ctx.storeKey().reveal(), 'REKEY_LOCAL_STORE_KEY'));
  // Timeouts of its own: in a silent network partition (packets swallowed, no FIN or RST) the
  // kernel keeps a connection for its retransmission timeout (about 15 min) and a new one's
  // startup is never answered, so every slot of the pool would be held that long. The query
  // timeout (60 s unless a test sets it) is longer than any statement the store sends (single
  // rows, a per-secret advisory lock).
  const pool = new pg.Pool({ connectionString: ctx.databaseUrl, max: 4, ...poolTimeouts({ queryTimeoutMs }) });
  pool.on('error', (error) => ctx.log.warn({ error: describeError(error) }, 'local store: idle connection failed'));
  // A connection checked out for a transaction has no pool listener: when PostgreSQL ends it
  // between two queries (a restart, pg_terminate_backend), its 'error' event would crash the
  // process. The transaction's next query fails instead, and the step is retried. A timed-out
  // query's connection is destroyed, a read-only server's dropped when given back.
  watchConnections(pool, (error) => ctx.log.warn({ error: describeError(error) }, 'local store: connection failed'));
  return {
    // Per-client keys: one entry per client under the configured name.
    store: ({ secret, params, client }) => new LocalStore(pool, key, entryName(params.name, client, secret), ctx.name),
    close: () => pool.end(),
  };
}

/** The store's entry for a managed secret: its binding's name (`<name>/<client>` per client), else the secret's own. */
function entryName(name: string | undefined, client: string | undefined, secret: string): string {
  return name ? `${name}${client ? `/${client}` : ''}` : secret;
}
