// The gcp-secret-manager store with `transport: rest`: the official client in its HTTP/1.1 fallback
// mode against the fake's REST surface (JSON mapping, google.rpc.Status error bodies), over the
// same in-memory model as the gRPC store: the store conformance suite, two rotations compared with
// gRPC, the recoveries that depend on telling statuses apart, and the error mapping by HTTP status.
// (The etag merge over both transports is in gcp-secret-manager.test.ts.)
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderInstance } from '../../../src/core/provider.js';
import type { SecretStore, StoredRef } from '../../../src/core/ports.js';
import { call, newVersion, rejection, stored } from '../../../test/conformance/refs.js';
import { callsPerRotation, storeConformance } from '../../../test/conformance/store.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import gcpSecretManager, { type GcpSecretManagerStoreBinding } from '../index.js';
import { startFakeSecretManager, type FakeSecretManager } from './fake/secret-manager-fake.js';

const PROJECT = 'rekey-test';
type Instance = ProviderInstance<GcpSecretManagerStoreBinding>;

let fake: FakeSecretManager;
const opened: Instance[] = [];

function open(transport: 'grpc' | 'rest', overrides: Record<string, unknown> = {}): Instance {
  const config = gcpSecretManager.config.parse({
    project: PROJECT,
    apiEndpoint: '127.0.0.1',
    port: transport === 'rest' ? fake.restPort : fake.port,
    insecure: true,
    transport,
    ...overrides,
  });
  const instance = gcpSecretManager.open(config, testProviderContext(`gcp-${transport}`));
  opened.push(instance);
  return instance;
}

const storeFor = (instance: Instance, name: string): SecretStore =>
  instance.store!({ secret: 'payments-api-key', params: gcpSecretManager.bindings.store!.parse({ name }) });
const uniqueName = () => `rekey-rest-${randomUUID()}`;

let rest: Instance;
let grpc: Instance;

beforeAll(async () => {
  fake = await startFakeSecretManager(PROJECT);
  rest = open('rest');
  grpc = open('grpc');
});

afterAll(async () => {
  for (const instance of opened) await instance.close?.();
  await fake?.close();
});

storeConformance('gcp-secret-manager (transport: rest)', () => {
  const name = uniqueName();
  return Promise.resolve({ store: storeFor(rest, name), secret: name, module: gcpSecretManager });
});

/** Two rotations as the engine makes them: v1 current; v2 then v3 promoted; v1 destroyed at the end of its grace. */
async function twoRotations(store: SecretStore): Promise<ReturnType<typeof newVersion>[]> {
  const versions = [newVersion('two'), newVersion('two'), newVersion('two')];
  let previous: StoredRef | undefined;
  const refs: StoredRef[] = [];
  for (const v of versions) {
    const next = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    await store.promote(next, previous, previous ?? null, call());
    refs.push(next);
    previous = next;
  }
  await store.destroy(refs[0]!, call());
  return versions;
}

/** What a rotation leaves in the model, without the (random) rekey version ids. */
function shape(name: string) {
  const secret = fake.model.secrets.get(name)!;
  return {
    aliases: secret.aliases,
    annotations: Object.keys(secret.annotations).sort(),
    states: secret.versions.map((v) => v.state),
  };
}

describe('gcp-secret-manager over REST: rotations', () => {
  it('two rotations leave the same aliases, annotations and version states as over gRPC, in the model both transports read', async () => {
    const [overRest, overGrpc] = [uniqueName(), uniqueName()];
    const values = await twoRotations(storeFor(rest, overRest));
    await twoRotations(storeFor(grpc, overGrpc));
    expect(shape(overRest)).toEqual({
      aliases: { current: 3, previous: 2 },
      annotations: ['rekey-version-2', 'rekey-version-3'],
      states: ['DISABLED', 'ENABLED', 'ENABLED'],
    });
    expect(shape(overRest)).toEqual(shape(overGrpc));
    expect(fake.model.secrets.get(overRest)!.labels).toEqual({ 'managed-by': 'rekey' });
    // One model: what REST wrote, gRPC reads, and both list the same versions.
    const written = storeFor(grpc, overRest);
    expect((await written.read({ stage: 'current' }, call())).equals(values[2]!.value)).toBe(true);
    expect((await written.read({ stage: 'previous' }, call())).equals(values[1]!.value)).toBe(true);
    expect(await storeFor(rest, overRest).list(call())).toEqual(await written.list(call()));
    expect((await rejection(storeFor(rest, overRest).read({ storeVersionId: '1' }, call()))).code).toBe('REKEY_ERR_NOT_FOUND');
  });

  it('a steady-state rotation costs the same calls as over gRPC', async () => {
    expect(await callsPerRotation('gcp-secret-manager (transport: rest)', storeFor(rest, uniqueName()), fake)).toBe(10);
  });

  it('a response lost to a dropped connection is retryable UNAVAILABLE, and the retry adopts the version instead of adding one', async () => {
    const name = uniqueName();
    const store = storeFor(rest, name);
    const v = newVersion('lost');
    fake.loseResponse('AddSecretVersion');
    const error = await rejection(store.writePending(v.ref, v.value, call()));
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_UNAVAILABLE', true]);
    expect((await store.writePending(v.ref, v.value, call())).storeVersionId).toBe('1');
    expect(fake.model.secrets.get(name)!.versions).toHaveLength(1);
  });

  it('destroy: "destroy" twice: the refused second disable (FAILED_PRECONDITION) is read as already destroyed', async () => {
    const name = uniqueName();
    const store = storeFor(open('rest', { destroy: 'destroy' }), name);
    const v = newVersion('destroy');
    const sv = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    await store.destroy(sv, call());
    await store.destroy(sv, call());
    expect(fake.model.secrets.get(name)!.versions.map((x) => [x.state, x.data])).toEqual([['DESTROYED', undefined]]);
  });
});

describe('gcp-secret-manager over REST: errors', () => {
  const cases = [
    { grpc: status.NOT_FOUND, http: 404, code: 'REKEY_ERR_NOT_FOUND', retryable: false },
    { grpc: status.PERMISSION_DENIED, http: 403, code: 'REKEY_ERR_DENIED', retryable: false },
    { grpc: status.ABORTED, http: 409, code: 'REKEY_ERR_CONFLICT', retryable: true },
    { grpc: status.RESOURCE_EXHAUSTED, http: 429, code: 'REKEY_ERR_THROTTLED', retryable: true },
    { grpc: status.UNAVAILABLE, http: 503, code: 'REKEY_ERR_UNAVAILABLE', retryable: true },
  ] as const;

  it.each(cases)('HTTP $http: a google.rpc.Status body, a bare status from a proxy and gRPC all give $code', async ({ grpc: grpcStatus, http, code, retryable }) => {
    const name = uniqueName();
    const v = newVersion('errors');
    const sv = stored(v.ref, (await storeFor(rest, name).writePending(v.ref, v.value, call())).storeVersionId);
    const promote = async (instance: Instance) => rejection(storeFor(instance, name).promote(sv, undefined, null, call()));

    fake.fail(grpcStatus, 1, 'GetSecret');
    const overGrpc = await promote(grpc);
    fake.fail(grpcStatus, 1, 'GetSecret');
    const overRest = await promote(rest);
    fake.httpFailure(http, 1, 'GetSecret');
    const fromProxy = await promote(rest);

    for (const error of [overGrpc, overRest, fromProxy]) expect([error.code, error.retryable]).toEqual([code, retryable]);
    expect(overRest.message).toContain(`HTTP ${http}`);
    expect(fromProxy.message).toContain(`HTTP ${http}`);
    // Google's text (here the fake's) is never copied into the message.
    for (const error of [overGrpc, overRest]) expect(error.message).not.toContain('injected by the fake');
    if (code === 'REKEY_ERR_DENIED') expect(overRest.message).toContain('secretmanager.secrets.get');
    await storeFor(rest, name).promote(sv, undefined, null, call()); // nothing stuck behind the failure
  });

  it('a call that gets no answer is abandoned at timeoutMs (the client applies its deadline to gRPC only)', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const store = storeFor(open('rest', { port, timeoutMs: 300 }), uniqueName());
      const started = performance.now();
      const error = await rejection(store.list(call(60_000)));
      expect([error.code, error.retryable]).toEqual(['REKEY_ERR_TIMEOUT', true]);
      expect(performance.now() - started).toBeLessThan(30_000); // not the call's 60 s: the provider's 300 ms, on a loaded machine
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('the config accepts transport grpc or rest and nothing else', () => {
    const parse = (transport: unknown) => gcpSecretManager.config.safeParse({ project: PROJECT, transport }).success;
    expect([parse('grpc'), parse('rest'), parse(undefined), parse('http'), parse(true)]).toEqual([true, true, true, false, false]);
  });
});
