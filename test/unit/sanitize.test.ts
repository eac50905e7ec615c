import { describe, expect, it } from 'vitest';
import { describeError, RekeyError, sanitize } from '../../src/core/errors.js';

describe('sanitize', () => {
  it.each([
    ['postgresql://rekey:s3cret@db:5432/rekey', 'postgresql://rekey:[stripped]@db:5432/rekey'],
    ['redis://:s3cret@cache:6379', 'redis://:[stripped]@cache:6379'],
    ['redis://default:p@ss@cache:6379/0', 'redis://default:[stripped]@cache:6379/0'],
    ['connect to rediss://u:x@h failed; retry', 'connect to rediss://u:[stripped]@h failed; retry'],
    ['Authorization: Bearer abc.def-ghi', 'Authorization: Bearer [stripped]'],
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
