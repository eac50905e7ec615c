/**
 * A local fake of the Kubernetes API server (plain HTTP on 127.0.0.1:0) implementing only what
 * the kubernetes-secret target calls, for @kubernetes/client-node pointed at it by a kubeconfig.
 *
 * Semantics follow the Kubernetes API reference and API concepts:
 * - Secret v1 (https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/):
 *   GET/PATCH /api/v1/namespaces/{ns}/secrets/{name}, POST /api/v1/namespaces/{ns}/secrets
 *   (201, 409 AlreadyExists); `data` values are base64.
 * - Deployment v1 (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/):
 *   GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}; a change of spec.template bumps
 *   metadata.generation and starts a rollout, reported through status.observedGeneration,
 *   updatedReplicas and availableReplicas (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status).
 * - PATCH with `application/merge-patch+json` (RFC 7386: objects merge, `null` deletes); other
 *   patch types answer 415. A `metadata.resourceVersion` in the patch that differs from the
 *   object's is a 409 Conflict (optimistic concurrency, https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions).
 * - Errors are `Status` objects with `reason` and `code`; a missing or wrong bearer token is 401;
 *   RBAC denials are 403 Forbidden (https://kubernetes.io/docs/reference/access-authn-authz/rbac/).
 */
import { createServer, type ServerResponse } from 'node:http';
import { readBody } from '../../../../test/support/fake-http.js';

type Json = Record<string, unknown>;

export interface FakeKubeApi {
  url: string;
  token: string;
  secrets: Map<string, Json>;
  deployments: Map<string, Json>;
  /** `VERB resource` -> count, e.g. `PATCH secrets`. */
  requests: Map<string, number>;
  /** Content types of PATCH requests received. */
  patchTypes: Set<string>;
  /** `verb resource/name` entries answered 403, e.g. `patch deployments/api`. */
  forbidden: Set<string>;
  /** How long a rollout takes (ms); 0 completes it at once; Infinity: until finishRollouts(). */
  rolloutMs: number;
  /** Completes every rollout still under way. */
  finishRollouts(): void;
  /**
   * Brings every rollout still under way to its last step under maxSurge 1, maxUnavailable 0:
   * every new pod exists and all but the last are ready, one old pod still runs (it goes once
   * the last new pod is ready), so as many pods are available as the spec wants.
   */
  surgeRollouts(): void;
  /** Someone else changes the Secret right after the next GET of it (a race). */
  raceNextRead: boolean;
  addSecret(namespace: string, name: string, data?: Record<string, string>): void;
  addDeployment(namespace: string, name: string, replicas?: number): void;
  /** A Secret's data, decoded. */
  secretData(namespace: string, name: string): Record<string, string> | undefined;
  close(): Promise<void>;
}

export async function startFakeKubeApi(token = 'fake-sa-token'): Promise<FakeKubeApi> {
  const secrets = new Map<string, Json>();
  const deployments = new Map<string, Json>();
  const requests = new Map<string, number>();
  const patchTypes = new Set<string>();
  const forbidden = new Set<string>();
  const state = { rolloutMs: 0, version: 1000, race: false };
  const timers = new Set<NodeJS.Timeout>();
  const unfinished = new Map<Json, () => void>();
  const nextVersion = () => String((state.version += 1));

  const server = createServer((req, res) => {
    void readBody(req).then((raw) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const m = /^\/(?:api\/v1|apis\/apps\/v1)\/namespaces\/([^/]+)\/(secrets|deployments)(?:\/([^/]+))?$/.exec(url.pathname);
      if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
      if (!m) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
      const [, namespace, resource, name] = m as unknown as [string, string, 'secrets' | 'deployments', string | undefined];
      const verb = { GET: 'get', PATCH: 'patch', POST: 'create' }[req.method ?? ''] ?? 'unknown';
      requests.set(`${req.method} ${resource}`, (requests.get(`${req.method} ${resource}`) ?? 0) + 1);
      if (forbidden.has(`${verb} ${resource}/${name ?? ''}`)) {
        return status(res, 403, 'Forbidden', `${resource} "${name}" is forbidden: User "system:serviceaccount:rekey:rekey" cannot ${verb} resource "${resource}"`);
      }
      const store = resource === 'secrets' ? secrets : deployments;
      const id = `${namespace}/${name ?? ''}`;

      if (req.method === 'POST' && !name && resource === 'secrets') {
        const body = JSON.parse(raw) as Json;
        const meta = (body.metadata ?? {}) as Json;
        const key = `${namespace}/${String(meta.name)}`;
        if (secrets.has(key)) return status(res, 409, 'AlreadyExists', `secrets "${String(meta.name)}" already exists`);
        const created = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', ...body, metadata: { ...meta, namespace, resourceVersion: nextVersion(), uid: crypto.randomUUID() } };
        secrets.set(key, created);
        return json(res, 201, created);
      }
      const object = name ? store.get(id) : undefined;
      if (!object) return status(res, 404, 'NotFound', `${resource} "${name}" not found`);
      if (req.method === 'GET') {
        json(res, 200, object);
        if (resource === 'secrets' && state.race) {
          state.race = false;
          store.set(id, { ...object, metadata: { ...(object.metadata as Json), resourceVersion: nextVersion() } });
        }
        return;
      }
      if (req.method === 'PATCH') {
        const type = String(req.headers['content-type'] ?? '').split(';')[0]!;
        patchTypes.add(type);
        if (type !== 'application/merge-patch+json') return status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json`);
        const patch = JSON.parse(raw) as Json;
        const meta = object.metadata as Json;
        const wanted = (patch.metadata as Json | undefined)?.resourceVersion;
        if (wanted !== undefined && wanted !== meta.resourceVersion) {
          return status(res, 409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        const before = JSON.stringify((object.spec as Json | undefined)?.template);
        const merged = mergePatch(object, patch) as Json;
        (merged.metadata as Json).resourceVersion = nextVersion();
        if (resource === 'deployments' && JSON.stringify((merged.spec as Json).template) !== before) startRollout(merged);
        store.set(id, merged);
        return json(res, 200, merged);
      }
      return status(res, 405, 'MethodNotAllowed', 'method not allowed');
    });
  });

  /** A new ReplicaSet generation: nothing updated until the rollout time has passed. */
  const startRollout = (d: Json) => {
    const meta = d.metadata as Json;
    meta.generation = Number(meta.generation ?? 1) + 1;
    const replicas = Number((d.spec as Json).replicas ?? 1);
    const finish = () => (d.status = { observedGeneration: meta.generation, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas });
    if (state.rolloutMs === 0) return finish();
    d.status = { ...(d.status as Json), observedGeneration: meta.generation, updatedReplicas: 0 };
    if (state.rolloutMs === Infinity) return void unfinished.set(d, finish);
    const timer = setTimeout(() => (timers.delete(timer), finish()), state.rolloutMs);
    timers.add(timer);
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    secrets,
    deployments,
    requests,
    patchTypes,
    forbidden,
    get rolloutMs() {
      return state.rolloutMs;
    },
    set rolloutMs(ms: number) {
      state.rolloutMs = ms;
    },
    finishRollouts() {
      for (const finish of unfinished.values()) finish();
      unfinished.clear();
    },
    surgeRollouts() {
      for (const d of unfinished.keys()) {
        const replicas = Number((d.spec as Json).replicas ?? 1);
        d.status = { ...(d.status as Json), replicas: replicas + 1, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas };
      }
    },
    get raceNextRead() {
      return state.race;
    },
    set raceNextRead(race: boolean) {
      state.race = race;
    },
    addSecret(namespace, name, data = {}) {
      const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
      secrets.set(`${namespace}/${name}`, { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, resourceVersion: nextVersion() }, data: encoded });
    },
    addDeployment(namespace, name, replicas = 2) {
      deployments.set(`${namespace}/${name}`, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace, generation: 1, resourceVersion: nextVersion() },
        spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'example/app:1' }] } } },
        status: { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas },
      });
    },
    secretData(namespace, name) {
      const data = secrets.get(`${namespace}/${name}`)?.data as Record<string, string> | undefined;
      return data ? Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) : undefined;
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      await new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
    },
  };
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Json = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Json) } : {};
  for (const [key, value] of Object.entries(patch as Json)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
