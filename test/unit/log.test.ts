import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SecretValue } from '../../src/core/secret-value.js';
import { createLogger, lazyChildLoggers } from '../../src/log.js';

describe('logging', () => {
  it('redacts credential-shaped fields centrally, and SecretValue prints itself redacted', () => {
    const lines: string[] = [];
    const log = createLogger('info', new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    log.info({ password: 'hunter2', token: 'ghp_abc', headers: { authorization: 'Bearer xyz', 'x-api-key': 'rk_live_k' }, nested: { value: 'v1' }, secret: 'payments-api-key' }, 'x');
    log.info({ key: SecretValue.of('rk_live_inside') }, 'y');
    const text = lines.join('');
    for (const leak of ['hunter2', 'ghp_abc', 'Bearer xyz', 'rk_live_k', '"v1"', 'rk_live_inside']) expect(text).not.toContain(leak);
    expect(text).toContain('"secret":"payments-api-key"'); // names are not secrets
    expect(text.match(/\[redacted\]/g)?.length).toBe(6);
  });

  it('logs an Error object as describeError does: sanitized message, no cause, no stack', () => {
    const lines: string[] = [];
    const log = createLogger('info', new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    const sdk = new Error('the service echoed rk_live_from_cause');
    log.error({ err: new Error('call failed: Authorization: Bearer abc.def', { cause: sdk }) }, 'x');
    log.error({ error: new TypeError('plain') }, 'y');
    const text = lines.join('');
    expect(text).toContain('"err":"Error: call failed: Authorization: Bearer [stripped]"');
    expect(text).toContain('"error":"TypeError: plain"');
    for (const leak of ['rk_live_from_cause', 'abc.def', 'at ']) expect(text).not.toContain(leak);
  });
});

describe('request loggers made on first use (LazyChildLogger)', () => {
  const capture = (level: string) => {
    const lines: string[] = [];
    const log = createLogger(level, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    let children = 0;
    const child = log.child.bind(log);
    log.child = ((...args: Parameters<typeof log.child>) => (children++, child(...args))) as typeof log.child;
    return { log, lines, made: () => children };
  };

  it('makes no child for lines below the level, and writes the others with the bindings and the redaction of an ordinary child', () => {
    const { log, lines, made } = capture('warn');
    const request = lazyChildLoggers(log, { reqId: 'req-7' }, {});
    request.info({ req: 'x' }, 'incoming request');
    request.debug('nothing');
    expect(made()).toBe(0);
    expect(request.isLevelEnabled('info')).toBe(false);
    request.error({ error: 'boom', token: 'ghp_secret' }, 'token exchange failed');
    request.warn('again');
    expect(made()).toBe(1);
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first).toMatchObject({ level: 50, reqId: 'req-7', error: 'boom', token: '[redacted]', msg: 'token exchange failed', service: 'rekey' });
    expect(second).toMatchObject({ level: 40, reqId: 'req-7', msg: 'again' });
    expect(lines).toHaveLength(2);
  });

  it('gives a route with options of its own an ordinary child', () => {
    const { log, made } = capture('info');
    lazyChildLoggers(log, { reqId: 'req-8' }, { level: 'debug' });
    expect(made()).toBe(1);
  });
});
