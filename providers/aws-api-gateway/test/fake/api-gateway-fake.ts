/**
 * A local fake of Amazon API Gateway (REST APIs, control plane 2015-07-09) speaking the
 * REST-JSON protocol the official @aws-sdk/client-api-gateway uses, plus a stand-in for an
 * API's stage that demands an API key, both on 127.0.0.1:0.
 *
 * Semantics follow the API Gateway API Reference (https://docs.aws.amazon.com/apigateway/latest/api/):
 * - ApiKey resources: CreateApiKey (POST /apikeys, 201; values of at least 20 characters; a value in
 *   use is a ConflictException), GetApiKey (GET /apikeys/{id}?includeValue=), GetApiKeys
 *   (GET /apikeys?name=&includeValues=&limit=&position=, limit 25 by default, 500 at most; `name` is
 *   matched as a prefix here), UpdateApiKey (PATCH /apikeys/{id} with patchOperations, `replace`
 *   on /enabled, /name, /description, /customerId), DeleteApiKey (DELETE, 202).
 * - UsagePlanKey: CreateUsagePlanKey (POST /usageplans/{id}/keys, 201, Conflict when present),
 *   GetUsagePlanKey, GetUsagePlanKeys (GET /usageplans/{id}/keys?limit=&position=, `item` with each
 *   key's id, type, name and value, paged like GetApiKeys), DeleteUsagePlanKey (202); NotFoundException
 *   for an unknown plan or key.
 * - GetUsage (GET /usageplans/{id}/usage?startDate=&endDate=&keyId=&limit=&position=): `values` maps
 *   each key of the plan to one `[used, remaining]` pair per day from startDate to endDate (UTC,
 *   inclusive) under the plan's daily quota; `position` pages over keys; dates are required.
 * - Errors: HTTP status + `x-amzn-errortype` header + `{"message": ...}` body (REST-JSON protocol).
 * - The stage: a request needs `x-api-key` naming an enabled key in the usage plan, else
 *   403 {"message":"Forbidden"} (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html).
 * Requests must carry a SigV4 Authorization header (its signature is not checked).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { listenLoopback, readBody } from '../../../../test/support/fake-http.js';

export interface FakeKey {
  id: string;
  value: string;
  name: string;
  customerId?: string;
  description?: string;
  enabled: boolean;
  createdDate: number;
  lastUpdatedDate: number;
  stageKeys: string[];
  tags: Record<string, string>;
}

export interface FakeApiGateway {
  endpoint: string;
  /** The protected stage, e.g. http://127.0.0.1:PORT/prod/orders */
  stageUrl: string;
  usagePlanId: string;
  keys: Map<string, FakeKey>;
  /** usagePlanId -> key ids */
  plans: Map<string, Set<string>>;
  /** Operation name -> count. */
  operations: Map<string, number>;
  /** Key id -> UTC day (YYYY-MM-DD) -> requests the stage accepted with it, as GetUsage reports them. */
  usage: Map<string, Map<string, number>>;
  /** Answer control-plane calls (all, or only `op`) with this error while set. */
  failWith: { status: number; type: string; op?: string } | undefined;
  /** Awaited before each control-plane call is handled (after its body was read): holds one call while others run. */
  gate: ((op: string) => Promise<void> | void) | undefined;
  close(): Promise<void>;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** The usage plan's quota: 10,000 requests a day. */
const DAILY_QUOTA = 10_000;

/** Every UTC day from `start` to `end`, inclusive (YYYY-MM-DD). */
function daysBetween(start: string, end: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= Date.parse(`${end}T00:00:00Z`); t += 86_400_000) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

const id = (n = 10) => randomBytes(n).toString('hex').slice(0, n);

export async function startFakeApiGateway(o: { pageLimit?: number } = {}): Promise<FakeApiGateway> {
  const keys = new Map<string, FakeKey>();
  const usagePlanId = id(6);
  const plans = new Map<string, Set<string>>([[usagePlanId, new Set()]]);
  const operations = new Map<string, number>();
  const usage = new Map<string, Map<string, number>>();
  const state: { failWith: FakeApiGateway['failWith']; gate: FakeApiGateway['gate'] } = { failWith: undefined, gate: undefined };
  const now = () => Math.floor(Date.now() / 1000);
  const view = (k: FakeKey, withValue: boolean) => {
    const { value, ...rest } = k;
    return withValue ? { ...rest, value } : rest;
  };

  const control = createServer((req, res) => {
    void readBody(req).then(async (raw) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      const op = operation(req.method ?? '', parts);
      await state.gate?.(op);
      operations.set(op, (operations.get(op) ?? 0) + 1);
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 Credential=')) {
        return error(res, 403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      }
      if (state.failWith && (!state.failWith.op || state.failWith.op === op)) return error(res, state.failWith.status, state.failWith.type, 'injected failure');
      const input = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};

      switch (op) {
        case 'CreateApiKey': {
          const value = typeof input.value === 'string' ? input.value : id(40);
          if (value.length < 20) return error(res, 400, 'BadRequestException', 'API Key value should be at least 20 characters');
          if ([...keys.values()].some((k) => k.value === value)) return error(res, 409, 'ConflictException', 'API Key already exists');
          const key: FakeKey = {
            id: id(10),
            value,
            name: typeof input.name === 'string' ? input.name : '',
            customerId: input.customerId as string | undefined,
            description: input.description as string | undefined,
            enabled: input.enabled === true,
            createdDate: now(),
            lastUpdatedDate: now(),
            stageKeys: [],
            tags: (input.tags as Record<string, string>) ?? {},
          };
          keys.set(key.id, key);
          return json(res, 201, view(key, true));
        }
        case 'GetApiKeys': {
          const name = url.searchParams.get('name');
          const limit = Math.min(Number(url.searchParams.get('limit') ?? 25), 500, o.pageLimit ?? 500);
          const start = Number(url.searchParams.get('position') ?? 0);
          const matching = [...keys.values()].filter((k) => !name || k.name.startsWith(name));
          const page = matching.slice(start, start + limit);
          const withValues = url.searchParams.get('includeValues') === 'true';
          return json(res, 200, {
            item: page.map((k) => view(k, withValues)),
            ...(start + limit < matching.length ? { position: String(start + limit) } : {}),
          });
        }
        case 'GetApiKey': {
          const key = keys.get(parts[1]!);
          if (!key) return error(res, 404, 'NotFoundException', 'Invalid API Key identifier specified');
          return json(res, 200, view(key, url.searchParams.get('includeValue') === 'true'));
        }
        case 'UpdateApiKey': {
          const key = keys.get(parts[1]!);
          if (!key) return error(res, 404, 'NotFoundException', 'Invalid API Key identifier specified');
          for (const patch of (input.patchOperations as Array<{ op: string; path: string; value?: string }>) ?? []) {
            if (patch.op !== 'replace') return error(res, 400, 'BadRequestException', `Invalid patch operation specified. Must be 'replace'`);
            if (patch.path === '/enabled') key.enabled = patch.value === 'true';
            else if (patch.path === '/name') key.name = patch.value ?? '';
            else if (patch.path === '/description') key.description = patch.value;
            else if (patch.path === '/customerId') key.customerId = patch.value;
            else return error(res, 400, 'BadRequestException', `Invalid patch path ${patch.path}`);
          }
          key.lastUpdatedDate = now();
          return json(res, 200, view(key, false));
        }
        case 'DeleteApiKey': {
          if (!keys.delete(parts[1]!)) return error(res, 404, 'NotFoundException', 'Invalid API Key identifier specified');
          for (const members of plans.values()) members.delete(parts[1]!);
          return json(res, 202, {});
        }
        case 'CreateUsagePlanKey': {
          const plan = plans.get(parts[1]!);
          const key = keys.get(String(input.keyId));
          if (!plan) return error(res, 404, 'NotFoundException', 'Invalid Usage Plan ID specified');
          if (!key || input.keyType !== 'API_KEY') return error(res, 404, 'NotFoundException', 'Invalid API Key identifier specified');
          if (plan.has(key.id)) return error(res, 409, 'ConflictException', 'Usage Plan Key already exists');
          plan.add(key.id);
          return json(res, 201, { id: key.id, type: 'API_KEY', name: key.name });
        }
        case 'GetUsagePlanKeys': {
          const plan = plans.get(parts[1]!);
          if (!plan) return error(res, 404, 'NotFoundException', 'Invalid Usage Plan ID specified');
          const limit = Math.min(Number(url.searchParams.get('limit') ?? 25), 1000, o.pageLimit ?? 1000);
          const start = Number(url.searchParams.get('position') ?? 0);
          const members = [...plan].map((k) => keys.get(k)).filter((k) => k !== undefined);
          return json(res, 200, {
            item: members.slice(start, start + limit).map((k) => ({ id: k.id, type: 'API_KEY', name: k.name, value: k.value })),
            ...(start + limit < members.length ? { position: String(start + limit) } : {}),
          });
        }
        case 'GetUsagePlanKey':
        case 'DeleteUsagePlanKey': {
          const plan = plans.get(parts[1]!);
          if (!plan || !plan.has(parts[3]!)) return error(res, 404, 'NotFoundException', 'Invalid Usage Plan Key identifier specified');
          if (op === 'DeleteUsagePlanKey') {
            plan.delete(parts[3]!);
            return json(res, 202, {});
          }
          return json(res, 200, { id: parts[3], type: 'API_KEY', name: keys.get(parts[3]!)?.name });
        }
        case 'GetUsage': {
          const plan = plans.get(parts[1]!);
          if (!plan) return error(res, 404, 'NotFoundException', 'Invalid Usage Plan ID specified');
          const [start, end] = [url.searchParams.get('startDate'), url.searchParams.get('endDate')];
          if (!start || !end || !DAY.test(start) || !DAY.test(end) || start > end) return error(res, 400, 'BadRequestException', 'Invalid startDate or endDate');
          const keyId = url.searchParams.get('keyId');
          const members = [...plan].filter((k) => !keyId || k === keyId).sort();
          const limit = Math.min(Number(url.searchParams.get('limit') ?? 25), 1000, o.pageLimit ?? 1000);
          const first = Number(url.searchParams.get('position') ?? 0);
          const days = daysBetween(start, end);
          const values = Object.fromEntries(
            members.slice(first, first + limit).map((k) => [k, days.map((day) => {
              const used = usage.get(k)?.get(day) ?? 0;
              return [used, Math.max(0, DAILY_QUOTA - used)];
            })]),
          );
          return json(res, 200, { usagePlanId: parts[1], startDate: start, endDate: end, values, ...(first + limit < members.length ? { position: String(first + limit) } : {}) });
        }
        default:
          return error(res, 404, 'UnknownOperationException', `no such operation: ${req.method} ${url.pathname}`);
      }
    });
  });

  const stage = createServer((req, res) => {
    const presented = req.headers['x-api-key'];
    const key = [...keys.values()].find((k) => k.value === presented);
    const allowed = key && key.enabled && [...plans.values()].some((members) => members.has(key.id));
    if (!allowed) return json(res, 403, { message: 'Forbidden' });
    const day = new Date().toISOString().slice(0, 10);
    const byDay = usage.get(key.id) ?? new Map<string, number>();
    usage.set(key.id, byDay.set(day, (byDay.get(day) ?? 0) + 1));
    json(res, 200, { ok: true, customerId: key.customerId ?? null });
  });

  const [controlPort, stagePort] = [await listenLoopback(control), await listenLoopback(stage)];
  return {
    endpoint: `http://127.0.0.1:${controlPort}`,
    stageUrl: `http://127.0.0.1:${stagePort}/prod/orders`,
    usagePlanId,
    keys,
    plans,
    operations,
    usage,
    get failWith() {
      return state.failWith;
    },
    set failWith(value) {
      state.failWith = value;
    },
    get gate() {
      return state.gate;
    },
    set gate(value) {
      state.gate = value;
    },
    close: async () => {
      await Promise.all([control, stage].map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())))));
    },
  };
}

function operation(method: string, parts: string[]): string {
  const shape = `${method} /${parts.map((p, i) => (i % 2 === 1 ? '*' : p)).join('/')}`;
  const names: Record<string, string> = {
    'POST /apikeys': 'CreateApiKey',
    'GET /apikeys': 'GetApiKeys',
    'GET /apikeys/*': 'GetApiKey',
    'PATCH /apikeys/*': 'UpdateApiKey',
    'DELETE /apikeys/*': 'DeleteApiKey',
    'POST /usageplans/*/keys': 'CreateUsagePlanKey',
    'GET /usageplans/*/keys': 'GetUsagePlanKeys',
    'GET /usageplans/*/keys/*': 'GetUsagePlanKey',
    'DELETE /usageplans/*/keys/*': 'DeleteUsagePlanKey',
    'GET /usageplans/*/usage': 'GetUsage',
  };
  return names[shape] ?? shape;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-requestid': id(8) }).end(JSON.stringify(body));
}

function error(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type, 'x-amzn-requestid': id(8) }).end(JSON.stringify({ message }));
}
