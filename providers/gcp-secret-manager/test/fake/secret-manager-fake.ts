/**
 * A local Google Secret Manager for tests: a gRPC server on 127.0.0.1 implementing
 * google.cloud.secretmanager.v1.SecretManagerService from the .proto files that
 * @google-cloud/secret-manager ships (its imports resolved from google-gax's protos), loaded from
 * node_modules at start. The official client talks to it with apiEndpoint 127.0.0.1, the port,
 * insecure channel credentials and no auth. Semantics live in secret-manager-model.ts (with their
 * documentation links); methods rekey does not use answer UNIMPLEMENTED.
 *
 * Failure injection: RESOURCE_EXHAUSTED for the next N calls, PERMISSION_DENIED for a method (with
 * Google's message naming the permission), a response lost after the write (the method runs,
 * then the call ends with UNAVAILABLE "Connection dropped", which is how @grpc/grpc-js reports a
 * connection that died before the response arrived), and a one-shot hook that runs just before a
 * method (to change the secret underneath a caller). Every call is counted per method.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  credentials,
  Server,
  ServerCredentials,
  loadPackageDefinition,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { PERMISSION, type GcpMethod } from '../../gcp-errors.js';
import { GrpcError, SecretManagerModel, field } from './secret-manager-model.js';

const METHODS = [
  'CreateSecret',
  'GetSecret',
  'UpdateSecret',
  'AddSecretVersion',
  'AccessSecretVersion',
  'GetSecretVersion',
  'ListSecretVersions',
  'DisableSecretVersion',
  'DestroySecretVersion',
] as const satisfies readonly GcpMethod[];
export type Method = (typeof METHODS)[number];

interface Injection {
  method: Method | undefined;
  remaining: number;
}

export interface FakeSecretManager {
  port: number;
  model: SecretManagerModel;
  /** Calls received per method, including those answered with an injected failure. */
  calls: Record<string, number>;
  resetCalls(): void;
  /** Answers the next `n` calls (of `method`, or of any) with RESOURCE_EXHAUSTED. */
  exhaust(n: number, method?: Method): void;
  /** Performs the next `n` calls of `method`, then fails them as a dropped connection would. */
  loseResponse(method: Method, n?: number): void;
  /** Answers every call of `method` with PERMISSION_DENIED until allow(). */
  deny(method: Method): void;
  allow(method: Method): void;
  /** Runs `hook` once, just before the next call of `method` is handled. */
  before(method: Method, hook: (model: SecretManagerModel) => void): void;
  close(): Promise<void>;
}

/** Where the client package keeps its protos, and google-gax the ones they import. */
export function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const secretManager = dirname(require.resolve('@google-cloud/secret-manager/package.json'));
  const gax = join(dirname(createRequire(join(secretManager, 'package.json')).resolve('google-gax')), '..', '..');
  return [join(secretManager, 'build', 'protos'), join(gax, 'build', 'protos')];
}

function loadService(): ServiceDefinition {
  const definition = loadSync('google/cloud/secretmanager/v1/service.proto', {
    includeDirs: protoIncludeDirs(),
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const root = loadPackageDefinition(definition) as unknown as {
    google: { cloud: { secretmanager: { v1: { SecretManagerService: { service: ServiceDefinition } } } } };
  };
  return root.google.cloud.secretmanager.v1.SecretManagerService.service;
}

/** Starts a fake serving `project` on 127.0.0.1 and a random port. */
export async function startFakeSecretManager(project: string): Promise<FakeSecretManager> {
  const model = new SecretManagerModel(project);
  const calls: Record<string, number> = {};
  const exhausted: Injection[] = [];
  const losses: Injection[] = [];
  const denied = new Set<Method>();
  const hooks = new Map<Method, (model: SecretManagerModel) => void>();
  const take = (list: Injection[], method: Method) => {
    const hit = list.find((i) => i.remaining > 0 && (i.method === undefined || i.method === method));
    if (hit) hit.remaining -= 1;
    return hit !== undefined;
  };

  const implementation: UntypedServiceImplementation = {};
  for (const method of METHODS) {
    implementation[method] = (call: ServerUnaryCall<Record<string, unknown>, unknown>, callback: sendUnaryData<unknown>) => {
      calls[method] = (calls[method] ?? 0) + 1;
      const resource =
        field(call.request, 'name') || field(call.request, 'parent') || field(call.request.secret as Record<string, unknown> | undefined, 'name');
      try {
        if (denied.has(method)) {
          throw new GrpcError(status.PERMISSION_DENIED, `Permission '${PERMISSION[method]}' denied for resource '${resource}' (or it may not exist).`);
        }
        if (take(exhausted, method)) {
          throw new GrpcError(status.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Access requests' of service 'secretmanager.googleapis.com'.");
        }
        const hook = hooks.get(method);
        hooks.delete(method);
        hook?.(model);
        const response = model[method](call.request);
        if (take(losses, method)) throw new GrpcError(status.UNAVAILABLE, 'Connection dropped');
        callback(null, response);
      } catch (error) {
        if (!(error instanceof GrpcError)) throw error;
        callback({ code: error.code, details: error.details });
      }
    };
  }

  const server = new Server();
  server.addService(loadService(), implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );

  return {
    port,
    model,
    calls,
    resetCalls: () => {
      for (const key of Object.keys(calls)) delete calls[key];
    },
    exhaust: (n, method) => void exhausted.push({ method, remaining: n }),
    loseResponse: (method, n = 1) => void losses.push({ method, remaining: n }),
    deny: (method) => void denied.add(method),
    allow: (method) => void denied.delete(method),
    before: (method, hook) => void hooks.set(method, hook),
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** The official client pointed at a fake, without TLS or Google auth: tests look behind the provider with it. */
export function officialClient(port: number): SecretManagerServiceClient {
  return new SecretManagerServiceClient({
    apiEndpoint: '127.0.0.1',
    port,
    sslCreds: credentials.createInsecure(),
    auth: { getUniverseDomain: () => Promise.resolve('googleapis.com') } as never,
  });
}
