/**
 * The REST surface of the fake (https://cloud.google.com/secret-manager/docs/reference/rest): HTTP/1.1
 * and JSON on 127.0.0.1, as the official client speaks it in fallback mode (`fallback: true`).
 * Routes come from the `google.api.http` rules in the service's .proto (the same files the gRPC
 * side loads), so paths, verbs and body fields are Google's: `POST /v1/{parent=projects/*}/secrets`
 * with the Secret as body and `secretId` in the query, `PATCH /v1/{secret.name=...}` with
 * `updateMask`, `GET .../versions/{v}:access`, `POST ...:addVersion|:disable|:destroy`, and so on.
 * Messages use the proto3 JSON mapping (lowerCamelCase names, base64 bytes, RFC 3339 timestamps,
 * int64 as strings; enums as numbers when the query says `$alt=json;enum-encoding=int`), converted
 * with proto3-json-serializer, the library the client itself uses. Errors are google.rpc.Status
 * bodies (`{"error":{"code":404,"message":...,"status":"NOT_FOUND"}}`) with the HTTP status Google
 * maps each gRPC code to (google/rpc/code.proto). Regional routes (`projects/*\/locations/*`) are
 * not served: the model has global secrets only.
 *
 * REST-only fault: `httpFailure` answers calls with a bare HTTP status and an HTML body, as a proxy
 * or load balancer in front of the API does; the client then has an HTTP status and no gRPC code.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { status } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { fromProto3JSON, toProto3JSON, type JSONObject } from 'proto3-json-serializer';
import { METHODS, take, type Faults, type Method } from './secret-manager-faults.js';
import { GrpcError } from './secret-manager-model.js';

type Json = Record<string, unknown>;

/** HTTP status per gRPC code (google/rpc/code.proto). */
const HTTP_STATUS: Record<number, number> = {
  [status.CANCELLED]: 499,
  [status.UNKNOWN]: 500,
  [status.INVALID_ARGUMENT]: 400,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.FAILED_PRECONDITION]: 400,
  [status.ABORTED]: 409,
  [status.OUT_OF_RANGE]: 400,
  [status.UNIMPLEMENTED]: 501,
  [status.INTERNAL]: 500,
  [status.UNAVAILABLE]: 503,
  [status.DATA_LOSS]: 500,
  [status.UNAUTHENTICATED]: 401,
};

interface Route {
  method: Method;
  verb: string;
  pattern: RegExp;
  /** The request field the path variable fills, dotted, proto names (`secret.name`). */
  variable: string;
  /** `*` (the whole request), a field name, or undefined (no body). */
  body: string | undefined;
  rpc: protobuf.Method;
}

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Routes of the methods the fake implements, from their primary (global) http rule. */
function routes(root: protobuf.Root): Route[] {
  const service = root.lookupService('google.cloud.secretmanager.v1.SecretManagerService');
  return METHODS.map((method) => {
    const rpc = service.methods[method]!;
    const rule = (rpc.parsedOptions as Array<Record<string, Record<string, string>>>).find((o) => o['(google.api.http)'])!['(google.api.http)']!;
    const verb = ['get', 'post', 'patch', 'delete'].find((v) => rule[v])!;
    const [, before, variable, template, after] = /^(.*)\{([^=}]+)=([^}]+)\}(.*)$/.exec(rule[verb]!)!;
    const segment = template!.replaceAll('*', '[^/:]+');
    return { method, verb: verb.toUpperCase(), pattern: new RegExp(`^${before}(${segment})${after}$`), variable: variable!, body: rule.body, rpc };
  });
}

/**
 * Renames message fields between the JSON mapping (lowerCamelCase) and proto names, following the
 * message type so that map keys (labels, annotations, aliases) are left as they are.
 */
function rename(type: protobuf.Type, value: unknown, toProto: boolean): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || type.fullName.startsWith('.google.protobuf.')) return value;
  const out: Json = {};
  for (const field of type.fieldsArray) {
    const [from, to] = toProto ? [camel(field.name), field.name] : [field.name, camel(field.name)];
    const v = (value as Json)[from] ?? (value as Json)[to];
    if (v === undefined) continue;
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (!sub) out[to] = v;
    else if (field.map) out[to] = Object.fromEntries(Object.entries(v as Json).map(([k, x]) => [k, rename(sub, x, toProto)]));
    else if (field.repeated && Array.isArray(v)) out[to] = v.map((x) => rename(sub, x, toProto));
    else out[to] = rename(sub, v, toProto);
  }
  return out;
}

function setPath(target: Json, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Json;
  const last = path[path.length - 1]!;
  const existing = node[last];
  node[last] = existing === undefined ? value : ([] as unknown[]).concat(existing, value);
}

/** The request message (proto names, as the model takes it) from an HTTP request. */
function decode(route: Route, match: RegExpExecArray, url: URL, text: string): Json {
  const body = text ? (JSON.parse(text) as unknown) : {};
  const json: Json = route.body === '*' ? { ...(body as Json) } : route.body ? { [camel(route.body)]: body } : {};
  setPath(json, route.variable.split('.').map(camel), match[1]);
  for (const [key, value] of url.searchParams) if (!key.startsWith('$')) setPath(json, key.split('.'), value);
  const type = route.rpc.resolvedRequestType!;
  const message = fromProto3JSON(type, rename(type, json, true) as JSONObject);
  const request = type.toObject(message!, { longs: String, enums: String, defaults: false, oneofs: true });
  const mask = request.update_mask as { paths?: string[] } | undefined;
  // Google accepts field mask paths in either spelling.
  if (mask?.paths) mask.paths = mask.paths.map(snake);
  return request;
}

function encode(route: Route, response: Json, numericEnums: boolean): string {
  const type = route.rpc.resolvedResponseType!;
  return JSON.stringify(rename(type, toProto3JSON(type.fromObject(response), { numericEnums }), false));
}

function send(res: ServerResponse, code: number, body: string, contentType = 'application/json; charset=UTF-8'): void {
  res.writeHead(code, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendStatus(res: ServerResponse, error: GrpcError): void {
  const http = HTTP_STATUS[error.code] ?? 500;
  send(res, http, JSON.stringify({ error: { code: http, message: error.details, status: status[error.code] } }));
}

export interface RestServer {
  port: number;
  /** Answers the next `n` calls (of `method`, or of any) with a bare `httpStatus` and an HTML body. */
  httpFailure(httpStatus: number, n: number, method?: Method): void;
  close(): Promise<void>;
}

/** Serves `faults` (and the model behind them) over REST on 127.0.0.1 and a random port. */
export async function startRestServer(faults: Faults, root: protobuf.Root): Promise<RestServer> {
  const table = routes(root);
  const failures: Array<{ method: Method | undefined; remaining: number; status: number }> = [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = decodeURIComponent(url.pathname);
    const found = table.flatMap((route) => {
      const match = route.verb === req.method ? route.pattern.exec(path) : null;
      return match ? [{ route, match }] : [];
    })[0];
    if (!found) return sendStatus(res, new GrpcError(status.NOT_FOUND, `no route ${req.method} ${url.pathname}`));
    const { route, match } = found;
    faults.count(route.method);
    const failure = take(failures, route.method);
    if (failure) {
      return send(res, failure.status, `<html><body><h1>${failure.status}</h1></body></html>`, 'text/html');
    }
    let request: Json;
    try {
      request = decode(route, match, url, Buffer.concat(chunks).toString('utf8'));
    } catch {
      return sendStatus(res, new GrpcError(status.INVALID_ARGUMENT, 'Invalid JSON payload received.'));
    }
    try {
      const outcome = await faults.handle(route.method, request);
      if (outcome.lost) return void res.socket?.destroy();
      send(res, 200, encode(route, outcome.response, url.searchParams.get('$alt')?.includes('enum-encoding=int') ?? false));
    } catch (error) {
      if (!(error instanceof GrpcError)) throw error;
      sendStatus(res, error);
    }
  };
  const server = createServer((req, res) => void handle(req, res).catch(() => res.socket?.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    httpFailure: (httpStatus, n, method) => void failures.push({ method, remaining: n, status: httpStatus }),
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
