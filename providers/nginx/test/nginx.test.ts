// The nginx target against the real nginx from Debian (nginx-light, started once for this file).
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/core/logger.js';
import type { Target } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { call, fingerprint, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { capturedLog } from '../../../test/support/captured-log.js';
import { retireAll, send, startBackend, startNginx, type Backend, type NginxGateway } from '../../../test/support/gateways/index.js';
import { throughGateway } from '../../../test/support/gateways/suite.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { nginx } from '../index.js';

let backend: Backend;
let gateway: NginxGateway;

beforeAll(async () => {
  backend = await startBackend();
  gateway = await startNginx(backend.port);
});
afterAll(async () => {
  await gateway?.stop();
  await backend?.close();
});

function openTarget(secret: string, overrides: Record<string, unknown> = {}, log?: Logger): Target {
  const config = nginx.config.parse({ ...gateway.providerConfig, ...overrides });
  return nginx.open(config, testProviderContext('edge-nginx', log ? { log } : {})).target!({ secret, params: nginx.bindings.target!.parse(undefined) });
}

targetConformance(
  'nginx',
  () => {
    const target = openTarget('conformance-nginx');
    return Promise.resolve({ target, secret: 'conformance-nginx', cleanup: () => retireAll(target) });
  },
  { probes: true },
);

throughGateway('nginx', { gateway: () => gateway, target: (secret) => openTarget(secret), secret: 'payments-nginx' });

describe('nginx specifics', () => {
  afterEach(async () => {
    // Drop whatever a test injected, then the keys.
    await writeFile(gateway.map, '');
    await retireAll(openTarget('cleanup'));
  });

  it('keeps the old map and the old keys when nginx -t rejects the new config, and says why', async () => {
    const target = openTarget('broken-nginx');
    const [a, b] = [newVersion('broken-nginx'), newVersion('broken-nginx')];
    await target.deploy(a.ref, a.value, call());
    // Someone breaks the map by hand; a quoted token in it must not reach rekey's error.
    await appendFile(gateway.map, '"leaky_token_0123456789" broken line\n');
    const broken = await readFile(gateway.map, 'utf8');

    const error = await rejection(target.deploy(b.ref, b.value, call()));
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/nginx -t rejected the configuration/);
    expect(error.message).toContain(`${gateway.map}:`);
    expect(error.message).not.toContain('leaky_token');
    expect(error.message).not.toContain(b.value.reveal());
    expect(await readFile(gateway.map, 'utf8')).toBe(broken);
    expect((await send(gateway.url, gateway.header, a.value.reveal())).status).toBe(200);
    expect((await send(gateway.url, gateway.header, b.value.reveal())).status).toBe(401);

    // Once the file is repaired, the same deploy goes through.
    await writeFile(gateway.map, broken.replace(/^"leaky.*\n/m, ''));
    await target.deploy(b.ref, b.value, call());
    expect((await send(gateway.url, gateway.header, b.value.reveal())).status).toBe(200);
  });

  it('nginx -t quoting a key-like token with an escaped quote reaches neither the error nor the log', async () => {
    // A hand-made entry written twice: nginx -t says `conflicting parameter "x"rk_live_..."`, the
    // token (lowercased) around an escaped quote, so no quote-matching can tell where it ends.
    const { log, lines } = capturedLog();
    const target = openTarget('quote-nginx', {}, log);
    const stranger = `rk_live_${'zq8'.repeat(12)}`;
    const line = `"x\\"${stranger}" someone;\n`;
    await appendFile(gateway.map, line + line);
    const v = newVersion('quote-nginx');
    const error = await rejection(target.deploy(v.ref, v.value, call()));
    // What the engine does with a failed step: log it.
    log.error({ err: error, secret: 'quote-nginx' }, 'deploy failed');
    for (const text of [error.message.toLowerCase(), lines.join('\n').toLowerCase()]) {
      for (const secret of [stranger, v.value.reveal().toLowerCase(), 'conflicting parameter']) expect(text).not.toContain(secret);
    }
    expect(error.code).toBe('REKEY_ERR_INVALID');
    expect(error.message).toContain(`at ${gateway.map}:`);
  });

  it('a retirement nginx -t refuses for another reason keeps the key out of the file, so the reload after the repair drops it', async () => {
    const target = openTarget('broken-retire-nginx');
    const leaked = newVersion('broken-retire-nginx');
    await target.deploy(leaked.ref, leaked.value, call());
    // Someone breaks the configuration by hand: no reload can happen until it is repaired.
    await appendFile(gateway.map, '"leaky_token_0123456789" broken line\n');
    const error = await rejection(target.retire(leaked.ref, call()));
    expect(error.message).toMatch(/nginx -t rejected the configuration/);
    expect(error.message).not.toContain('leaky_token');
    expect(await readFile(gateway.map, 'utf8')).not.toContain(leaked.value.reveal());
    // The operator repairs it and restarts nginx: the retired key must not come back with the file.
    await writeFile(gateway.map, (await readFile(gateway.map, 'utf8')).replace(/^"leaky.*\n/m, ''));
    await gateway.restart();
    expect((await send(gateway.url, gateway.header, leaked.value.reveal())).status).toBe(401);
    await target.retire(leaked.ref, call());
  });

  it('matches keys case-sensitively (nginx compares plain map strings ignoring case)', async () => {
    const target = openTarget('case-nginx');
    const value = SecretValue.of('rk_test_AbCdEf0123456789.plus+slash/eq=');
    const ref = { secret: 'case-nginx', versionId: 'v-case', number: 1, fingerprint: fingerprint(value), consumer: 'case-nginx' };
    await target.deploy(ref, value, call());
    expect((await send(gateway.url, gateway.header, value.reveal())).status).toBe(200);
    expect((await send(gateway.url, gateway.header, value.reveal().toUpperCase())).status).toBe(401);
    // `.` and `+` are literal, not regex operators.
    expect((await send(gateway.url, gateway.header, value.reveal().replace('.', 'x'))).status).toBe(401);
    expect(await held(target)).toEqual([{ fingerprint: ref.fingerprint, consumer: 'case-nginx' }]);
  });

  it('keeps lines it did not write', async () => {
    await writeFile(gateway.map, '# operator note\n"~^static-key$" "ops";\n');
    const target = openTarget('keep-nginx');
    const v = newVersion('keep-nginx');
    await target.deploy(v.ref, v.value, call());
    await target.retire(v.ref, call());
    const text = await readFile(gateway.map, 'utf8');
    expect(text).toContain('# operator note\n');
    expect((await send(gateway.url, gateway.header, 'static-key')).body).toBe('consumer=ops');
  });

  it('corrects the consumer of a key deployed again with another consumer, keeping one entry', async () => {
    const target = openTarget('consumer-nginx');
    const v = newVersion('consumer-nginx', 'old-consumer');
    await target.deploy(v.ref, v.value, call());
    await target.deploy({ ...v.ref, consumer: 'new-consumer' }, v.value, call());
    expect(await held(target)).toEqual([{ fingerprint: v.ref.fingerprint, consumer: 'new-consumer' }]);
    expect((await send(gateway.url, gateway.header, v.value.reveal())).body).toBe('consumer=new-consumer');
  });

  it('reports a master that is not running as retryable UNAVAILABLE', async () => {
    const target = openTarget('down-nginx', { pidFile: `${gateway.dir}/absent.pid` });
    const v = newVersion('down-nginx');
    const error = await rejection(target.deploy(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
  });
});
