import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { describeError, ProviderError, RekeyError, sanitize } from '../../src/core/errors.js';
import { createLogger } from '../../src/log.js';

describe('sanitize', () => {
  it.each([
    ['postgresql://rekey:s3cret@db:5432/rekey', 'postgresql://rekey:[stripped]@db:5432/rekey'],
    ['redis://:s3cret@cache:6379', 'redis://:[stripped]@cache:6379'],
    ['redis://default:p@ss@cache:6379/0', 'redis://default:[stripped]@cache:6379/0'],
    ['connect to rediss://u:x@h failed; retry', 'connect to rediss://u:[stripped]@h failed; retry'],
    ['Authorization: Bearer abc.def-ghi', 'Authorization: Bearer [stripped]'],
    ['postgresql://db/rekey?user=rekey&password=s3cret&sslmode=require', 'postgresql://db/rekey?user=rekey&password=[stripped]&sslmode=require'],
    ['postgres://db/rekey?sslpassword=k3y failed', 'postgres://db/rekey?sslpassword=[stripped] failed'],
  ])('strips the credential from %s', (message, expected) => {
    expect(sanitize(message)).toBe(expected);
  });

  it('leaves URLs without credentials alone', () => {
    expect(sanitize('GET https://example.com:8443/path@v2 failed')).toBe('GET https://example.com:8443/path@v2 failed');
  });

  it('applies to error messages', () => {
    expect(new RekeyError('REKEY_ERR_UNAVAILABLE', 'redis://:hunter2@cache:6379 refused').message).not.toContain('hunter2');
    expect(describeError(new Error('redis://:hunter2@cache refused'))).not.toContain('hunter2');
  });
});

describe('error text (the one place it is sanitized before it is stored or logged)', () => {
  it('has no control characters, line separators or bidi overrides, and is capped in length', () => {
    const hostile = 'step failed\u0000 at\r\nlevel=info msg=forged\u2028\u202etxt.exe\u0085 \u001b[31m';
    for (const text of [sanitize(hostile), describeError(new Error(hostile)), describeError(new ProviderError('REKEY_ERR_INVALID', hostile, { provider: 'p' }))]) {
      // eslint-disable-next-line no-control-regex -- what must not be there
      expect(text).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
      expect(text).toContain('level=info msg=forged');
    }
    const long = describeError(new Error('x'.repeat(10_000)));
    expect(long.length).toBeLessThan(1100);
    expect(long).toMatch(/… \(cut\)$/);
  });

  it('error text logged as a string is sanitized by the logger too', () => {
    const lines: string[] = [];
    const log = createLogger('info', new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    log.warn({ error: 'a\u0000b\nc' }, 'x');
    expect((JSON.parse(lines[0]!) as { error: string }).error).toBe('a b c');
  });
});
