/**
 * Where rekey's Redis is and how to reach it, parsed once from REDIS_URL: a single node,
 * a Sentinel set or a Cluster seed list. Plain data (no client library here): src/queue
 * builds rekey's connections from it, and the redis-keyset provider its own.
 *
 *   redis://[[user]:password@]host[:6379][/db]                       a single node
 *   redis+sentinel://[[user]:password@]h1[:26379],h2,h3/master[/db]  Sentinel: the sentinels and the master set name
 *   redis+cluster://[[user]:password@]h1[:6379],h2,h3                Cluster: any few nodes (seeds)
 *
 * `rediss` instead of `redis` (`rediss+sentinel`, `rediss+cluster`) uses TLS, to the
 * sentinels as well. The user and password are those of the data nodes; the sentinels'
 * own come from the query (`sentinelUsername`) and REDIS_SENTINEL_PASSWORD.
 */
import { RekeyError } from './errors.js';
import { SecretValue } from './secret-value.js';

export type RedisMode = 'standalone' | 'sentinel' | 'cluster';

export interface RedisNode {
  host: string;
  port: number;
}

export interface RedisEndpoint {
  mode: RedisMode;
  /** standalone: the server; sentinel: the sentinels; cluster: the seed nodes. */
  nodes: RedisNode[];
  /** Sentinel: the master set name (`mymaster`). */
  masterName: string | undefined;
  /** Logical database; always 0 on a Cluster. */
  db: number;
  username: string | undefined;
  password: SecretValue | undefined;
  tls: boolean;
  /** Sentinel: the sentinels' own ACL user and password, when they require one. */
  sentinelUsername: string | undefined;
  sentinelPassword: SecretValue | undefined;
}

const FORM = /^(rediss?)(?:\+(sentinel|cluster))?:\/\/(?:([^@/?#]*)@)?([^/?#]+)(\/[^?#]*)?(?:\?([^#]*))?$/;
const DEFAULT_PORT: Record<RedisMode, number> = { standalone: 6379, sentinel: 26379, cluster: 6379 };

/**
 * Parses REDIS_URL. `password` (REDIS_PASSWORD) wins over one in the URL.
 * @throws RekeyError REKEY_ERR_CONFIG naming REDIS_URL; the message never repeats the URL (it may hold a password).
 */
export function parseRedisUrl(url: string, secrets: { password?: SecretValue | undefined; sentinelPassword?: SecretValue | undefined } = {}): RedisEndpoint {
  const match = FORM.exec(url.trim());
  const invalid = (why: string) => new RekeyError('REKEY_ERR_CONFIG', `REDIS_URL ${why} (forms: redis://host:port/db, redis+sentinel://h1:26379,h2:26379/mymaster, redis+cluster://h1:6379,h2:6379; rediss for TLS)`);
  if (!match) throw invalid('is not a Redis URL');
  const [, scheme, form, userinfo, hostList, path, query] = match;
  const mode: RedisMode = form === 'sentinel' ? 'sentinel' : form === 'cluster' ? 'cluster' : 'standalone';
  const nodes = hostList!.split(',').map((part) => parseNode(part, DEFAULT_PORT[mode], invalid));
  if (mode === 'standalone' && nodes.length !== 1) throw invalid('names several hosts: use redis+sentinel:// or redis+cluster://');

  const segments = (path ?? '').split('/').filter(Boolean);
  const masterName = mode === 'sentinel' ? decodeURIComponent(segments.shift() ?? '') : undefined;
  if (mode === 'sentinel' && !masterName) throw invalid('needs the master set name as its path (redis+sentinel://h1:26379,h2:26379/mymaster)');
  const dbText = segments.shift();
  if (segments.length || (mode === 'cluster' && dbText !== undefined)) throw invalid('has an unexpected path');
  const db = dbText === undefined ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw invalid('names a database that is not a number');

  const params = new URLSearchParams(query ?? '');
  for (const key of params.keys()) if (key !== 'sentinelUsername' || mode !== 'sentinel') throw invalid(`has an unknown option ${JSON.stringify(key)}`);

  const [user, pass] = splitUserinfo(userinfo);
  const password = secrets.password ?? (pass ? SecretValue.of(pass) : undefined);
  return {
    mode,
    nodes,
    masterName,
    db,
    username: user || undefined,
    password,
    tls: scheme === 'rediss',
    sentinelUsername: params.get('sentinelUsername') ?? undefined,
    sentinelPassword: mode === 'sentinel' ? secrets.sentinelPassword : undefined,
  };
}

function parseNode(text: string, defaultPort: number, invalid: (why: string) => Error): RedisNode {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!match) throw invalid('has a malformed host');
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port < 1 || port > 65535) throw invalid('has a port out of range');
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

function splitUserinfo(userinfo: string | undefined): [string, string] {
  if (!userinfo) return ['', ''];
  const colon = userinfo.indexOf(':');
  const decode = (s: string) => decodeURIComponent(s);
  return colon === -1 ? [decode(userinfo), ''] : [decode(userinfo.slice(0, colon)), decode(userinfo.slice(colon + 1))];
}

/** One line for logs and messages: the topology, never a password. */
export function describeRedis(endpoint: RedisEndpoint): string {
  const nodes = endpoint.nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)).join(',');
  const tls = endpoint.tls ? ' (TLS)' : '';
  if (endpoint.mode === 'sentinel') return `Redis Sentinel master ${endpoint.masterName} via ${nodes}${tls}`;
  if (endpoint.mode === 'cluster') return `Redis Cluster seeded by ${nodes}${tls}`;
  return `Redis at ${nodes}${endpoint.db ? `/${endpoint.db}` : ''}${tls}`;
}

/** What a client library needs to open one connection (ioredis's option names; plain data). */
export interface RedisNodeOptions {
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
  tls?: Record<string, never>;
  sentinels?: RedisNode[];
  name?: string;
  sentinelUsername?: string;
  sentinelPassword?: string;
  enableTLSForSentinelMode?: boolean;
  sentinelTLS?: Record<string, never>;
}

/** A single node or Sentinel connection (`new Redis(options)`), or a Cluster (`new Cluster(nodes, { redisOptions: options })`). */
export type RedisClientPlan = { cluster: false; options: RedisNodeOptions } | { cluster: true; nodes: RedisNode[]; options: RedisNodeOptions };

/** The endpoint in a client library's terms. Reveals the passwords: call it where the connection is opened. */
export function redisClientPlan(endpoint: RedisEndpoint): RedisClientPlan {
  const auth: RedisNodeOptions = {
    ...(endpoint.username ? { username: endpoint.username } : {}),
    ...(endpoint.password ? { password: endpoint.password.reveal() } : {}),
    ...(endpoint.tls ? { tls: {} } : {}),
  };
  if (endpoint.mode === 'cluster') return { cluster: true, nodes: endpoint.nodes, options: auth };
  if (endpoint.mode === 'standalone') return { cluster: false, options: { ...auth, ...endpoint.nodes[0]!, db: endpoint.db } };
  return {
    cluster: false,
    options: {
      ...auth,
      db: endpoint.db,
      sentinels: endpoint.nodes,
      name: endpoint.masterName!,
      ...(endpoint.sentinelUsername ? { sentinelUsername: endpoint.sentinelUsername } : {}),
      ...(endpoint.sentinelPassword ? { sentinelPassword: endpoint.sentinelPassword.reveal() } : {}),
      ...(endpoint.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
    },
  };
}
