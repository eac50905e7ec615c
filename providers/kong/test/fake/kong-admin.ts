/**
 * A local fake of Kong Gateway for tests: the Admin API endpoints the kong target uses and
 * a proxy that authenticates by key-auth, both plain HTTP on 127.0.0.1:0.
 *
 * Semantics follow Kong's documentation:
 * - Admin API (3.x): https://developer.konghq.com/api/gateway/admin-ee/ — consumers
 *   (`GET /consumers/{username or id}`, `POST /consumers`, 409 on a duplicate username),
 *   key-auth credentials nested under a consumer (`PUT /consumers/{consumer}/key-auth/{id}` upsert,
 *   `GET` the same path, 404 "Not found" when the consumer is unknown, 409 when another credential
 *   holds the key), `GET /key-auths` and `DELETE /key-auths/{id}` (204, 404 when absent).
 * - Pagination (`size`, `offset`, `next`) and tag filtering (`?tags=a,b` AND, `a/b` OR; tags must not
 *   hold `,` or `/`): https://developer.konghq.com/gateway/tags/
 * - RBAC token header `Kong-Admin-Token`, 401 when it is missing or wrong.
 * - key-auth plugin: the key in the `apikey` header (key_names), 401 "No API key found in request"
 *   or "Invalid authentication credentials"; upstream learns the consumer (X-Consumer-Username):
 *   https://developer.konghq.com/plugins/key-auth/
 * - Prometheus plugin with `per_consumer: true`, `GET /metrics` on the Admin API (and the Status
 *   API) in the text exposition format: `kong_http_requests_total{service,route,code,source,
 *   workspace,consumer}` per proxied request (consumer "" when none was authenticated), beside
 *   gauges such as `kong_datastore_reachable`: https://developer.konghq.com/plugins/prometheus/
 *   The fake's upstream answers the status a request asks for in `x-fake-status` (default 200).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { listenLoopback, readBody } from '../../../../test/support/fake-http.js';

interface Consumer {
  id: string;
  username: string | null;
  custom_id: string | null;
  tags: string[] | null;
  created_at: number;
}

interface KeyAuth {
  id: string;
  key: string;
  consumer: { id: string };
  tags: string[] | null;
  ttl: number | null;
  created_at: number;
}

export interface FakeKong {
  adminUrl: string;
  proxyUrl: string;
  consumers: Map<string, Consumer>;
  credentials: Map<string, KeyAuth>;
  /** `METHOD /route` -> count, ids replaced by `{id}`. */
  requests: Map<string, number>;
  /** Answer 503 to every Admin API request while true (the proxy keeps serving). */
  down: boolean;
  /** Forget the proxy's request counts, as a restarted node does. */
  restartMetrics(): void;
  resetCounts(): void;
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function startFakeKong(o: { adminToken?: string; keyNames?: string[]; pageSize?: number } = {}): Promise<FakeKong> {
  const consumers = new Map<string, Consumer>();
  const credentials = new Map<string, KeyAuth>();
  const requests = new Map<string, number>();
  /** `<consumer>\n<code>` -> proxied requests, as the Prometheus plugin counts them. */
  const proxied = new Map<string, number>();
  const keyNames = (o.keyNames ?? ['apikey']).map((k) => k.toLowerCase());
  const state = { down: false };
  const now = () => Math.floor(Date.now() / 1000);

  const findConsumer = (idOrName: string) =>
    UUID.test(idOrName) && consumers.has(idOrName) ? consumers.get(idOrName) : [...consumers.values()].find((c) => c.username === idOrName);

  const admin = createServer((req, res) => {
    void readBody(req).then((raw) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      const label = `${req.method} /${parts.map((p, i) => (i > 0 && ['consumers', 'key-auth', 'key-auths'].includes(parts[i - 1]!) ? '{id}' : p)).join('/')}`;
      requests.set(label, (requests.get(label) ?? 0) + 1);
      if (state.down) return send(res, 503, { message: 'An unexpected error occurred' });
      if (o.adminToken && req.headers['kong-admin-token'] !== o.adminToken) {
        return send(res, 401, { message: 'Invalid credentials. Token or User credentials required' });
      }
      if (parts[0] === 'metrics' && parts.length === 1 && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' }).end(exposition(proxied));
        return;
      }
      let input: Record<string, unknown> = {};
      try {
        input = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      } catch {
        return send(res, 400, { message: 'Cannot parse JSON body' });
      }
      const badTags = (tags: unknown) => Array.isArray(tags) && tags.some((t) => typeof t !== 'string' || /[,/\s]/.test(t));

      // /consumers
      if (parts[0] === 'consumers' && parts.length === 1 && req.method === 'POST') {
        if (typeof input.username !== 'string' && typeof input.custom_id !== 'string') return send(res, 400, { message: 'schema violation (at least one of these fields must be non-empty: \'custom_id\', \'username\')' });
        if (badTags(input.tags)) return send(res, 400, { message: 'schema violation (tags: invalid tag)' });
        if ([...consumers.values()].some((c) => c.username === input.username)) {
          return send(res, 409, { message: `UNIQUE violation detected on '{username="${String(input.username)}"}'` });
        }
        const consumer: Consumer = {
          id: randomUUID(),
          username: (input.username as string) ?? null,
          custom_id: (input.custom_id as string) ?? null,
          tags: (input.tags as string[]) ?? null,
          created_at: now(),
        };
        consumers.set(consumer.id, consumer);
        return send(res, 201, consumer);
      }
      if (parts[0] === 'consumers' && parts.length === 2 && req.method === 'GET') {
        const consumer = findConsumer(parts[1]!);
        return consumer ? send(res, 200, consumer) : send(res, 404, { message: 'Not found' });
      }
      // /consumers/{consumer}/key-auth/{id}
      if (parts[0] === 'consumers' && parts[2] === 'key-auth' && parts.length === 4) {
        const consumer = findConsumer(parts[1]!);
        if (!consumer) return send(res, 404, { message: 'Not found' });
        const id = parts[3]!;
        if (req.method === 'GET') {
          const credential = credentials.get(id);
          return credential && credential.consumer.id === consumer.id ? send(res, 200, credential) : send(res, 404, { message: 'Not found' });
        }
        if (req.method === 'PUT') {
          if (!UUID.test(id)) return send(res, 400, { message: 'schema violation (id: expected a valid UUID)' });
          if (typeof input.key !== 'string' || input.key.length === 0) return send(res, 400, { message: 'schema violation (key: required field missing)' });
          if (badTags(input.tags)) return send(res, 400, { message: 'schema violation (tags: invalid tag)' });
          const clash = [...credentials.values()].find((c) => c.key === input.key && c.id !== id);
          if (clash) return send(res, 409, { message: `UNIQUE violation detected on '{key="${input.key}"}'` });
          const credential: KeyAuth = {
            id,
            key: input.key,
            consumer: { id: consumer.id },
            tags: (input.tags as string[]) ?? null,
            ttl: null,
            created_at: credentials.get(id)?.created_at ?? now(),
          };
          credentials.set(id, credential);
          return send(res, 200, credential);
        }
      }
      // /key-auths
      if (parts[0] === 'key-auths' && parts.length === 1 && req.method === 'GET') {
        return send(res, 200, page([...credentials.values()], url, o.pageSize ?? 1000));
      }
      if (parts[0] === 'key-auths' && parts.length === 2 && req.method === 'DELETE') {
        const credential = credentials.get(parts[1]!) ?? [...credentials.values()].find((c) => c.key === parts[1]);
        if (!credential) return send(res, 404, { message: 'Not found' });
        credentials.delete(credential.id);
        res.writeHead(204).end();
        return;
      }
      return send(res, 405, { message: 'Method not allowed' });
    });
  });

  const count = (consumer: string, code: number) => proxied.set(`${consumer}\n${code}`, (proxied.get(`${consumer}\n${code}`) ?? 0) + 1);
  const proxy = createServer((req, res) => {
    const name = keyNames.find((k) => typeof req.headers[k] === 'string');
    const key = name ? (req.headers[name] as string) : undefined;
    if (!key) return (count('', 401), send(res, 401, { message: 'No API key found in request' }));
    const credential = [...credentials.values()].find((c) => c.key === key);
    if (!credential) return (count('', 401), send(res, 401, { message: 'Invalid authentication credentials' }));
    const consumer = consumers.get(credential.consumer.id);
    const status = Number(req.headers['x-fake-status'] ?? 200);
    count(consumer?.username ?? '', status);
    res.writeHead(status, { 'content-type': 'text/plain' }).end(`consumer=${consumer?.username ?? consumer?.id ?? ''}`);
  });

  const [adminPort, proxyPort] = [await listenLoopback(admin), await listenLoopback(proxy)];
  return {
    adminUrl: `http://127.0.0.1:${adminPort}`,
    proxyUrl: `http://127.0.0.1:${proxyPort}/`,
    consumers,
    credentials,
    requests,
    get down() {
      return state.down;
    },
    set down(value: boolean) {
      state.down = value;
    },
    resetCounts: () => requests.clear(),
    restartMetrics: () => proxied.clear(),
    close: async () => {
      await Promise.all([admin, proxy].map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())))));
    },
  };
}

/** The Prometheus plugin's answer: a few gauges, then the request counter per consumer and code (label values escaped). */
function exposition(proxied: Map<string, number>): string {
  const escape = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
  const lines = [
    '# HELP kong_datastore_reachable Datastore reachable from Kong, 0 is unreachable',
    '# TYPE kong_datastore_reachable gauge',
    'kong_datastore_reachable 1',
    '# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong',
    '# TYPE kong_http_requests_total counter',
  ];
  for (const [label, n] of proxied) {
    const [consumer, code] = label.split('\n');
    lines.push(`kong_http_requests_total{service="fake-upstream",route="fake-route",code="${code}",source="service",workspace="default",consumer="${escape(consumer!)}"} ${n}`);
  }
  lines.push(
    '# HELP kong_nginx_connections_total Number of connections by subsystem',
    '# TYPE kong_nginx_connections_total gauge',
    'kong_nginx_connections_total{node_id="6d2c3e44-1d5e-4c8e-9a3f-3b1d1b1d1b1d",subsystem="http",state="active"} 2',
    '# HELP kong_memory_lua_shared_dict_bytes Allocated slabs in bytes in a shared_dict',
    '# TYPE kong_memory_lua_shared_dict_bytes gauge',
    'kong_memory_lua_shared_dict_bytes{node_id="6d2c3e44-1d5e-4c8e-9a3f-3b1d1b1d1b1d",shared_dict="kong",kong_subsystem="http"} 45056',
  );
  return `${lines.join('\n')}\n`;
}

/** Kong's list answer: tag filter, then `size` items from `offset`; `next` and `offset` when more remain. */
function page(items: KeyAuth[], url: URL, maxSize: number) {
  const tags = url.searchParams.get('tags');
  let filtered = items;
  if (tags) {
    const or = tags.includes('/');
    const wanted = tags.split(or ? '/' : ',');
    filtered = items.filter((c) => (or ? wanted.some((t) => c.tags?.includes(t)) : wanted.every((t) => c.tags?.includes(t))));
  }
  const size = Math.min(Number(url.searchParams.get('size') ?? 100), maxSize);
  const start = Number(url.searchParams.get('offset') ?? 0);
  const data = filtered.slice(start, start + size);
  const more = start + size < filtered.length;
  const next = new URLSearchParams(url.searchParams);
  next.set('offset', String(start + size));
  return { data, next: more ? `${url.pathname}?${next.toString()}` : null, offset: more ? String(start + size) : null };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}
