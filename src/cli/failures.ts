/**
 * PostgreSQL and Redis failures in one line with what to check, instead of a Prisma
 * invocation dump or ioredis' "Connection is closed.". The URL is shown with its
 * password masked.
 */
import { isIP } from 'node:net';
import type { Settings } from '../settings.js';

const NETWORK = /\b(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)\b/;

/**
 * A URL the WHATWG parser refuses (Redis' sentinel and cluster forms list several hosts) split
 * into scheme, userinfo (up to the last `@` of the authority), host list and the rest; undefined
 * when the split is not safe: an `@` after the host list (a password with `/`, `?` or `#`) means
 * a part of the password would be shown as host or path.
 */
function splitUnparsed(text: string): { scheme: string; userinfo: string | undefined; hosts: string; rest: string } | undefined {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^/?#]*)@)?([^/?#@]*)(.*)$/is.exec(text);
  if (!match || match[4]!.includes('@')) return undefined;
  return { scheme: match[1]!, userinfo: match[2], hosts: match[3]!, rest: match[4]! };
}

/**
 * `postgresql://rekey:***@db:5432/rekey`: the URL with any password replaced, also one given as
 * a query parameter (`?password=`, `?sslpassword=`: the pg driver and libpq take them there too);
 * `(not a URL)` when it cannot be split safely.
 */
export function maskUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password) url.password = '***';
    for (const name of [...url.searchParams.keys()]) if (/password/i.test(name)) url.searchParams.set(name, '***');
    return url.toString();
  } catch {
    const parts = splitUnparsed(text);
    if (!parts) return '(not a URL)';
    const { scheme, userinfo, hosts, rest } = parts;
    const user = userinfo === undefined ? '' : `${userinfo.includes(':') ? `${userinfo.slice(0, userinfo.indexOf(':'))}:***` : userinfo}@`;
    return `${scheme}${user}${hosts}${rest.replace(/([?&][^=&#]*password[^=&#]*=)[^&#]*/gi, '$1***')}`;
  }
}

/** `db:5432`, or the host list of a URL with several (`h1:26379,h2:26379`); never the userinfo. */
function hostPort(text: string, fallbackPort: string): string {
  try {
    const url = new URL(text);
    return `${url.hostname || '127.0.0.1'}:${url.port || fallbackPort}`;
  } catch {
    return splitUnparsed(text)?.hosts || '(not a URL)';
  }
}

/**
 * The socket error behind a Prisma driver-adapter failure: adapter-pg keeps only a kind, and
 * reports ECONNREFUSED and ENOTFOUND both as DatabaseNotReachable (an IP address cannot be
 * ENOTFOUND).
 */
function adapterCause(error: { meta?: { driverAdapterError?: { cause?: { kind?: unknown } } } } | undefined, host: string): string | undefined {
  switch (error?.meta?.driverAdapterError?.cause?.kind) {
    case 'DatabaseNotReachable':
      return isIP(host.replace(/^\[|\]$/g, '')) ? 'ECONNREFUSED' : 'ECONNREFUSED or ENOTFOUND';
    case 'SocketTimeout':
      return 'ETIMEDOUT';
    case 'ConnectionClosed':
      return 'ECONNRESET';
    default:
      return undefined;
  }
}

/**
 * The one line for a PostgreSQL or Redis failure, or undefined for any other error.
 * `databaseVariable` names where `settings.databaseUrl` came from (`rekey migrate` connects as
 * REKEY_MIGRATE_DATABASE_URL when it is set).
 */
export function describeInfraFailure(error: unknown, settings: Pick<Settings, 'databaseUrl' | 'redisUrl'>, databaseVariable = 'DATABASE_URL'): string | undefined {
  const e = error as { code?: unknown; message?: unknown; name?: unknown; cause?: { code?: unknown }; meta?: { driverAdapterError?: { cause?: { kind?: unknown } } } } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  const code = typeof e?.code === 'string' ? e.code : '';
  const network = NETWORK.exec(`${code} ${typeof e?.cause?.code === 'string' ? e.cause.code : ''} ${message}`)?.[1];
  const db = `${databaseVariable}=${maskUrl(settings.databaseUrl)}`;
  const pgAt = hostPort(settings.databaseUrl, '5432');
  const database = (() => {
    try {
      return decodeURIComponent(new URL(settings.databaseUrl).pathname.slice(1));
    } catch {
      return '';
    }
  })();
  if (code === 'P1003' || code === '3D000' || /database .* does not exist/i.test(message)) {
    return `database "${database}" does not exist on PostgreSQL at ${pgAt}: \`rekey migrate\` creates it (${db})`;
  }
  if (code === 'P1000' || code === '28P01' || code === '28000' || /authentication failed/i.test(message)) {
    return `PostgreSQL at ${pgAt} refused the user or password: check ${db}`;
  }
  const redisAt = hostPort(settings.redisUrl, '6379');
  const redisPort = redisAt.split(':').at(-1);
  const isRedis = /Connection is closed|max retries per request|Stream isn't writeable/i.test(message) || (network !== undefined && message.includes(`:${redisPort}`) && !message.includes(`:${pgAt.split(':').at(-1)}`));
  if (isRedis) return `cannot reach Redis at ${redisAt}${network ? ` (${network})` : ''}: is it running? REDIS_URL=${maskUrl(settings.redisUrl)}`;
  if (code === 'P1001' || code === 'P1002' || code === 'P1017' || /can't reach database server/i.test(message) || network) {
    const cause = network ?? adapterCause(e, pgAt.slice(0, pgAt.lastIndexOf(':')));
    return `cannot reach PostgreSQL at ${pgAt}${cause ? ` (${cause})` : ''}: is it running? ${db}`;
  }
  return undefined;
}
