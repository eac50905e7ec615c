// The haproxy target against the real HAProxy from Debian (started once for this file).
import { readdir, readFile, stat } from 'node:fs/promises';
import { Agent } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigError } from '../../../src/core/errors.js';
import type * as AtomicFile from '../../../src/core/kit/atomic-file.js';
import type { Logger } from '../../../src/core/logger.js';
import type { Target } from '../../../src/core/ports.js';
import { call, fingerprint, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { capturedLog } from '../../../test/support/captured-log.js';
import { retireAll, send, startBackend, startHaproxy, type Backend, type HaproxyGateway } from '../../../test/support/gateways/index.js';
import { throughGateway } from '../../../test/support/gateways/suite.js';
import { providers } from '../../../src/registry.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { haproxy } from '../index.js';
import { parseRuntimeEndpoint, runtimeCommand } from '../runtime-api.js';

// Real writes, one of which a test can hold back: for a time, to force two writers' renames out
// of order, or until it releases it (`hold`: `reached` resolves when the write is held).
// `afterWrite` runs after every write: another process changing the live map meanwhile.
const writes = vi.hoisted(() => ({
  delayNextMs: 0,
  hold: undefined as { reached: () => void; released: Promise<void> } | undefined,
  afterWrite: undefined as (() => Promise<void>) | undefined,
}));
vi.mock('../../../src/core/kit/atomic-file.js', async (importOriginal) => {
  const actual = await importOriginal<typeof AtomicFile>();
  return {
    ...actual,
    async writeFileAtomic(path: string, data: string) {
      const [delay, hold] = [writes.delayNextMs, writes.hold];
      [writes.delayNextMs, writes.hold] = [0, undefined];
      if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
      if (hold) {
        hold.reached();
        await hold.released;
      }
      await actual.writeFileAtomic(path, data);
      await writes.afterWrite?.();
    },
  };
});

let backend: Backend;
let gateway: HaproxyGateway;

beforeAll(async () => {
  backend = await startBackend();
  // One thread: the address-reuse race below needs the adds on the thread that freed the entry.
  gateway = await startHaproxy(backend.port, { threads: 1 });
});
afterAll(async () => {
  await gateway?.stop();
  await backend?.close();
});

function openTarget(secret: string, overrides: Record<string, unknown> = {}, log?: Logger): Target {
  const config = haproxy.config.parse({ ...gateway.providerConfig, ...overrides });
  return haproxy.open(config, testProviderContext('edge-haproxy', log ? { log } : {})).target!({ secret, params: haproxy.bindings.target!.parse(undefined) });
}

/** A command straight to HAProxy's Runtime API (another process's, not the target's). */
const direct = (command: string) => runtimeCommand(parseRuntimeEndpoint(gateway.runtimeApi.unix), command, AbortSignal.timeout(10_000), 10_000);

/** The reference (`0x...`, the entry's address) `show map` lists for a key. */
async function refOf(key: string): Promise<string | undefined> {
  const line = (await direct(`show map ${gateway.map}`)).split('\n').find((l) => l.split(' ')[1] === key);
  return line?.split(' ')[0];
}

/**
 * A TCP relay in front of the Runtime API's unix socket: the first command matching `pattern`
 * is held until `before()` has run, then passed on as any other.
 */
async function relay(pattern: RegExp, before: () => Promise<void>): Promise<{ url: string; close: () => void }> {
  const upstream = parseRuntimeEndpoint(gateway.runtimeApi.unix);
  if (upstream.kind !== 'unix') throw new Error('a unix socket expected');
  let armed = true;
  // Half-open: the client ends its side after the command and still reads the answer.
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (!head.includes('\n')) return;
      client.off('data', onData);
      const hold = armed && pattern.test(head.toString('utf8'));
      if (hold) armed = false;
      void (hold ? before() : Promise.resolve()).then(() => {
        const out = connect(upstream.path, () => {
          out.write(head);
          client.pipe(out);
        });
        out.pipe(client);
        out.on('error', () => client.destroy());
      });
    };
    client.on('data', onData);
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `tcp://127.0.0.1:${port}`, close: () => server.close() };
}

/** Fingerprints of the keys in the map file, sorted. */
async function fileFingerprints(): Promise<string[]> {
  const lines = (await readFile(gateway.map, 'utf8')).split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  return lines.map((line) => fingerprint(line.split(' ')[0]!)).sort();
}

targetConformance(
  'haproxy',
  () => {
    const target = openTarget('conformance-haproxy');
    return Promise.resolve({ target, secret: 'conformance-haproxy', cleanup: () => retireAll(target) });
  },
  { probes: true },
);

throughGateway('haproxy', { gateway: () => gateway, target: (secret) => openTarget(secret), secret: 'payments-haproxy' });

describe('haproxy specifics', () => {
  afterEach(() => retireAll(openTarget('cleanup')));

  it('rewrites the map file atomically after each change, so a restart keeps the same keys', async () => {
    const target = openTarget('restart-haproxy');
    const [a, b] = [newVersion('restart-haproxy'), newVersion('restart-haproxy')];
    await target.deploy(a.ref, a.value, call());
    await target.deploy(b.ref, b.value, call());
    await target.retire(a.ref, call());
    const file = await readFile(gateway.map, 'utf8');
    expect(file).toContain(`${b.value.reveal()} restart-haproxy\n`);
    expect(file).not.toContain(a.value.reveal());
    expect((await stat(gateway.map)).mode & 0o777).toBe(0o640);
    expect((await readdir(gateway.dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    await gateway.restart();
    expect((await send(gateway.url, gateway.header, b.value.reveal())).status).toBe(200);
    expect((await send(gateway.url, gateway.header, a.value.reveal())).status).toBe(401);
    expect((await held(target)).map((e) => e.fingerprint)).toEqual([b.ref.fingerprint]);
    await retireAll(target);
  });

  it('takes a burst of changes in parallel without exceeding the Runtime API connection limit', async () => {
    const target = openTarget('burst-haproxy');
    const versions = Array.from({ length: 40 }, () => newVersion('burst-haproxy'));
    await Promise.all(versions.map((v) => target.deploy(v.ref, v.value, call())));
    await Promise.all(versions.slice(0, 20).map((v) => target.retire(v.ref, call())));
    const live = (await held(target)).map((e) => e.fingerprint).sort();
    expect(live).toEqual(versions.slice(20).map((v) => v.ref.fingerprint).sort());
    expect(await fileFingerprints()).toEqual(live);
    await retireAll(target);
  });

  it('rewrites the file again when another writer renamed an older snapshot over it, so a retired key stays out after a restart', async () => {
    // Over the unix socket and over TCP: two persist queues for one file, as two processes have.
    const [first, second] = [openTarget('race-haproxy'), openTarget('race-haproxy', { runtimeApi: gateway.runtimeApi.tcp })];
    const [leaked, kept, added] = [newVersion('race-haproxy'), newVersion('race-haproxy'), newVersion('race-haproxy')];
    await first.deploy(leaked.ref, leaked.value, call());
    await first.deploy(kept.ref, kept.value, call());
    // The first writer reads the live map (with `leaked`), then is slow to rename...
    writes.delayNextMs = 400;
    const slow = first.deploy(added.ref, added.value, call());
    await new Promise((resolve) => setTimeout(resolve, 100));
    // ...while the second retires `leaked` and rewrites the file; the slow rename lands after.
    await second.retire(leaked.ref, call());
    await slow;
    expect(await fileFingerprints()).toEqual([kept.ref.fingerprint, added.ref.fingerprint].sort());
    await gateway.restart();
    expect((await send(gateway.url, gateway.header, leaked.value.reveal())).status).toBe(401);
    expect((await send(gateway.url, gateway.header, kept.value.reveal())).status).toBe(200);
    await retireAll(first);
  });

  it.each([
    ['', false],
    [', also while the live map keeps changing through every rewrite', true],
  ])('fails a retirement when HAProxy reloads the key from the file before the rewrite, and the retry keeps it out%s', async (_, churn) => {
    const target = openTarget('reload-haproxy');
    const leaked = newVersion('reload-haproxy');
    await target.deploy(leaked.ref, leaked.value, call());
    const accepted = async () => (await send(gateway.url, gateway.header, leaked.value.reveal())).status;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => {
      writes.hold = { reached: resolve, released: new Promise((done) => (release = done)) };
    });
    const retiring = target.retire(leaked.ref, call());
    // The key is deleted from the live map; the file, its rewrite held, still has it.
    await reached;
    expect(await accepted()).toBe(401);
    await gateway.restart();
    expect(await accepted()).toBe(200);
    const others: string[] = [];
    if (churn) {
      writes.afterWrite = async () => {
        others.push(newVersion('other').value.reveal());
        await direct(`add map ${gateway.map} ${others.at(-1)!} other`);
      };
    }
    release();
    const error = await rejection(retiring).finally(() => (writes.afterWrite = undefined));
    for (const key of others) await direct(`del map ${gateway.map} ${key}`);
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(error.message).not.toContain(leaked.value.reveal());
    await target.retire(leaked.ref, call());
    expect(await accepted()).toBe(401);
    expect(await fileFingerprints()).not.toContain(leaked.ref.fingerprint);
    await gateway.restart();
    expect(await accepted()).toBe(401);
  });

  it('fails a deploy when HAProxy restarts from the file before the rewrite, and the retry makes the key live again', async () => {
    const target = openTarget('reload-deploy-haproxy');
    const v = newVersion('reload-deploy-haproxy');
    const accepted = async () => (await send(gateway.url, gateway.header, v.value.reveal())).status;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => {
      writes.hold = { reached: resolve, released: new Promise((done) => (release = done)) };
    });
    const deploying = target.deploy(v.ref, v.value, call());
    // The key is in the live map; the file, its rewrite held, does not have it yet.
    await reached;
    expect(await accepted()).toBe(200);
    await gateway.restart();
    expect(await accepted()).toBe(401);
    release();
    const error = await rejection(deploying);
    expect([error.code, error.retryable]).toEqual(['REKEY_ERR_UNAVAILABLE', true]);
    expect(error.message).not.toContain(v.value.reveal());
    await target.deploy(v.ref, v.value, call());
    expect(await accepted()).toBe(200);
    expect(await fileFingerprints()).toContain(v.ref.fingerprint);
    await gateway.restart();
    expect(await accepted()).toBe(200);
    await retireAll(target);
  });

  it.each(['retire', 'throttle'] as const)(
    '%s changes the key, not the entry at an address: an entry another process deleted meanwhile, its address given to a new key, leaves that key alone',
    async (op) => {
      // HAProxy's allocator hands a freed entry's address to a later add once its per-thread cache is full.
      for (let i = 0; i < 40; i++) await direct(`add map ${gateway.map} churn-${op}-${i} x`);
      for (let i = 0; i < 40; i++) await direct(`del map ${gateway.map} churn-${op}-${i}`);
      const secret = `reuse-${op}`;
      const old = newVersion(secret);
      await openTarget(secret).deploy(old.ref, old.value, call());
      const ref = await refOf(old.value.reveal());
      const added: string[] = [];
      let reused: string | undefined; // the new key HAProxy gave the deleted entry's address
      // After the target's `show map`, before its change: another process deletes the entry, and keys are added until one gets its address.
      const front = await relay(/^(del|set) map /, async () => {
        await direct(`del map ${gateway.map} ${old.value.reveal()}`);
        for (let round = 0; round < 80 && !reused; round++) {
          for (let i = 0; i < 25; i++) {
            added.push(newVersion('other').value.reveal());
            await direct(`add map ${gateway.map} ${added.at(-1)!} other`);
          }
          const line = (await direct(`show map ${gateway.map}`)).split('\n').find((l) => l.startsWith(`${ref} `));
          reused = line?.split(' ')[1];
        }
      });
      try {
        const target = openTarget(secret, { runtimeApi: front.url, timeoutMs: 60_000 });
        await (op === 'retire' ? target.retire(old.ref, call()) : target.throttle!(old.ref, true, call()));
        expect(reused).toBeDefined(); // the race happened
        const live = (await direct(`show map ${gateway.map}`)).split('\n').map((line) => line.split(' ').slice(1).join(' '));
        expect(live.includes(`${reused} other`)).toBe(true);
        expect(added.filter((key) => !live.includes(`${key} other`)).length).toBe(0);
      } finally {
        front.close();
        for (const key of added) await direct(`del map ${gateway.map} ${key}`);
      }
    },
  );

  it('speaks the Runtime API over TCP as well as a unix socket', async () => {
    const target = openTarget('tcp-haproxy', { runtimeApi: gateway.runtimeApi.tcp });
    const v = newVersion('tcp-haproxy');
    await target.deploy(v.ref, v.value, call());
    expect(await held(target)).toEqual([{ fingerprint: v.ref.fingerprint, consumer: 'tcp-haproxy' }]);
    expect((await send(gateway.url, gateway.header, v.value.reveal())).status).toBe(200);
    await target.retire(v.ref, call());
    expect(await held(target)).toEqual([]);
  });

  it('corrects the consumer of a key deployed again with another consumer, keeping one entry', async () => {
    const target = openTarget('consumer-haproxy');
    const v = newVersion('consumer-haproxy', 'old-consumer');
    await target.deploy(v.ref, v.value, call());
    await target.deploy({ ...v.ref, consumer: 'new-consumer' }, v.value, call());
    expect(await held(target)).toEqual([{ fingerprint: v.ref.fingerprint, consumer: 'new-consumer' }]);
    expect((await send(gateway.url, gateway.header, v.value.reveal())).body).toBe('consumer=new-consumer');
    await retireAll(target);
  });

  it('reports an unknown map as a configuration error, not worth retrying', async () => {
    const target = openTarget('nomap-haproxy', { map: `${gateway.dir}/not-loaded.map` });
    const v = newVersion('nomap-haproxy');
    const error = await rejection(target.deploy(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.retryable).toBe(false);
  });

  it('reports an unreachable Runtime API as retryable UNAVAILABLE', async () => {
    const target = openTarget('down-haproxy', { runtimeApi: `unix:${gateway.dir}/absent.sock` });
    const error = await rejection(held(target));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
  });

  it('refuses a key HAProxy cannot hold without echoing it', async () => {
    const target = openTarget('bad-haproxy');
    const v = newVersion('bad-haproxy');
    const bad = { ...v, value: (await import('../../../src/core/secret-value.js')).SecretValue.of('has space;show map') };
    const error = await rejection(target.deploy(bad.ref, bad.value, call()));
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.message).not.toContain('space');
  });
  it('an answer that quotes a key reaches neither the error nor the log, for a change or a listing', async () => {
    // A Runtime API whose answers quote keys: the one sent, and another key-like value.
    const stranger = `rk_live_${'Zq8'.repeat(12)}`;
    let listing = '';
    const server: Server = createServer({ allowHalfOpen: true }, (client) => {
      let command = '';
      client.on('data', (chunk: Buffer) => {
        command += chunk.toString('utf8');
        if (!command.includes('\n')) return;
        const words = command.trim().split(' ');
        client.end(command.startsWith('show map') ? listing : `Unexpected input '${words[3] ?? ''}' near ${stranger}.\n`);
      });
      client.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { log, lines } = capturedLog();
      const target = openTarget('echo-haproxy', { runtimeApi: `tcp://127.0.0.1:${(server.address() as { port: number }).port}` }, log);
      const v = newVersion('echo-haproxy');
      const change = await rejection(target.deploy(v.ref, v.value, call()));
      listing = `0x1 ${v.value.reveal()} echo-haproxy\n${stranger} is not an entry\n`;
      const list = await rejection(held(target));
      // What the engine does with a failed step: log it.
      for (const error of [change, list]) log.error({ err: error, secret: 'echo-haproxy' }, 'step failed');
      for (const text of [change.message, list.message, lines.join('\n')]) {
        for (const secret of [v.value.reveal(), stranger, 'Unexpected input', 'is not an entry']) expect(text).not.toContain(secret);
      }
      expect(change.message).toContain(`add map ${gateway.map}`);
      expect(list.message).toContain(`show map ${gateway.map}`);
    } finally {
      server.close();
    }
  });
});

describe('haproxy as a usage source (stick tables)', () => {
  let counting: HaproxyGateway;
  beforeAll(async () => {
    counting = await startHaproxy(backend.port, { usage: { throttledPer10s: 1000 } });
  });
  afterAll(() => counting?.stop());
  const open = () => {
    const config = haproxy.config.parse(counting.providerConfig);
    return haproxy.open(config, testProviderContext('usage-haproxy')).target!({ secret: 'usage-haproxy', params: haproxy.bindings.target!.parse(undefined) });
  };

  it('a new instance (a new config revision) does not count every network of the table as seen in its first window', async () => {
    const target = open();
    const v = newVersion('usage-haproxy');
    await target.deploy(v.ref, v.value, call());
    const sourcesOf = async (t: Target) => (await t.readUsage!(10_000, call())).counters.find((c) => c.fingerprint === v.ref.fingerprint)?.sources;
    await sourcesOf(target); // this instance's first read
    // The key used from five networks, then read twice: nothing moved in the second window.
    for (let n = 1; n <= 5; n++) {
      const agent = new Agent({ localAddress: `127.0.${n}.1` });
      expect((await send(counting.url, counting.header, v.value.reveal(), agent)).status).toBe(200);
      agent.destroy();
    }
    expect(await sourcesOf(target)).toBe(5);
    expect(await sourcesOf(target)).toBe(0);
    // An apply opens new instances while the collector keeps its previous read: no network moved since.
    expect((await sourcesOf(open())) ?? 0).toBe(0);
    await retireAll(target);
  });
});

describe('haproxy in rekey.yaml', () => {
  const problems = (secrets: string) =>
    parseConfig(`providers:\n  vault: { type: local }\n  edge: { type: haproxy, masterCli: unix:/run/haproxy-master.sock }\nsecrets:\n${secrets}`, 'rekey.yaml', providers).then(
      () => '',
      (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    );
  const signing = (name: string, files: string) =>
    `  ${name}: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, targets: [{ provider: edge, publish: jwks, keyFiles: [${files}] }] }\n`;

  it('refuses a binding the provider entry cannot serve (no map, runtimeApi or masterCli): it could not open, every rotation would fail', async () => {
    const problems = (provider: string, target: string) =>
      parseConfig(`providers:\n  vault: { type: local }\n  gw: { type: haproxy${provider} }\nsecrets:\n  api: { store: { provider: vault }, issuer: { type: random }, targets: [${target}] }\n`, 'rekey.yaml', providers).then(
        () => '',
        (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      );
    expect(await problems(', runtimeApi: "tcp://127.0.0.1:9999"', 'gw')).toMatch(/secrets\.api\.targets\[0\]: .*map/);
    expect(await problems(', map: /etc/haproxy/keys.map', 'gw')).toMatch(/secrets\.api\.targets\[0\]: .*runtimeApi/);
    expect(await problems(', runtimeApi: "tcp://127.0.0.1:9999"', '{ provider: gw, keyFiles: [/etc/haproxy/jwt/1.pem, /etc/haproxy/jwt/2.pem] }')).toMatch(/secrets\.api\.targets\[0\]: .*masterCli/);
    expect(await problems(', runtimeApi: "tcp://127.0.0.1:9999"', '{ provider: gw, map: /etc/haproxy/api.map }')).toBe('');
    expect(await problems(', masterCli: unix:/run/haproxy-master.sock', '{ provider: gw, keyFiles: [/etc/haproxy/jwt/1.pem, /etc/haproxy/jwt/2.pem] }')).toBe('');
  });

  it('refuses two signing keys publishing to one key file: each deploy empties the files of the other\'s keys', async () => {
    expect(await problems(signing('a', '/etc/haproxy/jwt/1.pem, /etc/haproxy/jwt/2.pem') + signing('b', '/etc/haproxy/jwt/2.pem, /etc/haproxy/jwt/3.pem'))).toMatch(
      /secrets\.b\.targets\[0\]: it would change \/etc\/haproxy\/jwt\/2\.pem on edge, as the target of a does/,
    );
    expect(await problems(signing('a', '/etc/haproxy/jwt/a1.pem, /etc/haproxy/jwt/a2.pem') + signing('b', '/etc/haproxy/jwt/b1.pem, /etc/haproxy/jwt/b2.pem'))).toBe('');
  });
});
