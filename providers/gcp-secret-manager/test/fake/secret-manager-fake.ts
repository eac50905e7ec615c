/**
 * A local Google Secret Manager for tests, speaking both transports of the official client on
 * 127.0.0.1 over one in-memory model (secret-manager-model.ts, with its documentation links):
 *
 * - gRPC (`port`): google.cloud.secretmanager.v1.SecretManagerService from the .proto files that
 *   @google-cloud/secret-manager ships (their imports resolved from google-gax's protos). The client
 *   talks to it with apiEndpoint 127.0.0.1, the port, insecure channel credentials and no auth.
 * - REST (`restPort`): the same service's HTTP/1.1 JSON mapping, for the client in fallback mode
 *   (secret-manager-rest.ts).
 *
 * Methods rekey does not use answer UNIMPLEMENTED (gRPC) or 404 (REST). Failure injection, shared by
 * both transports (secret-manager-faults.ts): RESOURCE_EXHAUSTED or any status for the next N calls,
 * PERMISSION_DENIED for a method (with Google's message naming the permission), a response lost
 * after the write (the method runs, then the connection drops: over gRPC the call ends with
 * UNAVAILABLE "Connection dropped", which is how @grpc/grpc-js reports it; over REST the socket is
 * destroyed), a one-shot hook that runs just before a method (to change the secret underneath
 * a caller), and a hold of a method's next call until the test releases it (to land other calls in
 * between). Every call is counted per method, whichever transport carried it.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
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
import protobuf from 'protobufjs';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { Faults, METHODS, type Method } from './secret-manager-faults.js';
import { GrpcError, SecretManagerModel } from './secret-manager-model.js';
import { startRestServer, type RestServer } from './secret-manager-rest.js';

export type { Method } from './secret-manager-faults.js';

export interface FakeSecretManager {
  /** The gRPC port. */
  port: number;
  /** The REST (HTTP/1.1 JSON) port. */
  restPort: number;
  model: SecretManagerModel;
  /** Calls received per method, over both transports, including those answered with an injected failure. */
  calls: Record<string, number>;
  resetCalls(): void;
  /** Answers the next `n` calls (of `method`, or of any) with RESOURCE_EXHAUSTED. */
  exhaust(n: number, method?: Method): void;
  /** Answers the next `n` calls (of `method`, or of any) with gRPC status `code` (over REST: its google.rpc.Status body). */
  fail(code: status, n?: number, method?: Method): void;
  /** Performs the next `n` calls of `method`, then drops the connection before the answer. */
  loseResponse(method: Method, n?: number): void;
  /** Answers every call of `method` with PERMISSION_DENIED until allow(). */
  deny(method: Method): void;
  allow(method: Method): void;
  /** Runs `hook` once, just before the next call of `method` is handled. */
  before(method: Method, hook: (model: SecretManagerModel) => void): void;
  /** Holds the next call of `method` until release(); `arrived` settles once it waits. */
  hold(method: Method): { arrived: Promise<void>; release: () => void };
  /** REST only: answers the next `n` calls with a bare HTTP status and an HTML body, as a proxy would. */
  httpFailure: RestServer['httpFailure'];
  close(): Promise<void>;
}

/** Where the client package keeps its protos, and google-gax the ones they import. */
export function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const secretManager = dirname(require.resolve('@google-cloud/secret-manager/package.json'));
  const gax = join(dirname(createRequire(join(secretManager, 'package.json')).resolve('google-gax')), '..', '..');
  return [join(secretManager, 'build', 'protos'), join(gax, 'build', 'protos')];
}

const SERVICE_PROTO = 'google/cloud/secretmanager/v1/service.proto';

function loadService(): ServiceDefinition {
  const definition = loadSync(SERVICE_PROTO, {
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

/** The same .proto files as a protobufjs root with proto field names, for the REST side. */
function loadRoot(): protobuf.Root {
  const dirs = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => dirs.map((d) => join(d, target)).find((p) => existsSync(p)) ?? target;
  root.loadSync(SERVICE_PROTO, { keepCase: true }).resolveAll();
  return root;
}

async function startGrpcServer(faults: Faults): Promise<{ port: number; server: Server }> {
  const implementation: UntypedServiceImplementation = {};
  for (const method of METHODS) {
    implementation[method] = (call: ServerUnaryCall<Record<string, unknown>, unknown>, callback: sendUnaryData<unknown>) => {
      faults.count(method);
      faults.handle(method, call.request).then(
        (outcome) => (outcome.lost ? callback({ code: status.UNAVAILABLE, details: 'Connection dropped' }) : callback(null, outcome.response)),
        (error: unknown) =>
          callback(error instanceof GrpcError ? { code: error.code, details: error.details } : { code: status.INTERNAL, details: String(error) }),
      );
    };
  }
  const server = new Server();
  server.addService(loadService(), implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { port, server };
}

/** Starts a fake serving `project` on 127.0.0.1, gRPC and REST each on a random port. */
export async function startFakeSecretManager(project: string): Promise<FakeSecretManager> {
  const model = new SecretManagerModel(project);
  const faults = new Faults(model);
  const grpc = await startGrpcServer(faults);
  const rest = await startRestServer(faults, loadRoot());
  return {
    port: grpc.port,
    restPort: rest.port,
    model,
    calls: faults.calls,
    resetCalls: () => faults.resetCalls(),
    exhaust: (n, method) => faults.exhaust(n, method),
    fail: (code, n, method) => faults.fail(code, n, method),
    loseResponse: (method, n) => faults.loseResponse(method, n),
    deny: (method) => faults.deny(method),
    allow: (method) => faults.allow(method),
    before: (method, hook) => faults.before(method, hook),
    hold: (method) => faults.hold(method),
    httpFailure: (httpStatus, n, method) => rest.httpFailure(httpStatus, n, method),
    close: async () => {
      await rest.close();
      await new Promise<void>((resolve) => grpc.server.tryShutdown(() => resolve()));
    },
  };
}

/** The official client pointed at a fake's gRPC port, without TLS or Google auth: tests look behind the provider with it. */
export function officialClient(port: number): SecretManagerServiceClient {
  return new SecretManagerServiceClient({
    apiEndpoint: '127.0.0.1',
    port,
    sslCreds: credentials.createInsecure(),
    auth: { getUniverseDomain: () => Promise.resolve('googleapis.com') } as never,
  });
}
