// Secret Manager errors name the gRPC status, never Google's free text, which is still read to
// tell cases apart.
import { describe, expect, it } from 'vitest';
import { describeError } from '../../../src/core/errors.js';
import { gcpError, Status } from '../gcp-errors.js';

const LEAK = 'ECHOED-REQUEST-zq81x';
const live = new AbortController().signal;

describe('gcpError', () => {
  it('names the gRPC status, never Google\'s details', () => {
    const context = { provider: 'g', secret: 'projects/p/secrets/s', method: 'AddSecretVersion' as const, signal: live };
    for (const code of [...Object.values(Status), undefined]) {
      const wrapped = gcpError(Object.assign(new Error(LEAK), { code, details: LEAK }), context);
      expect(wrapped.message).not.toContain(LEAK);
      expect(describeError(wrapped)).not.toContain(LEAK);
    }
    expect(gcpError(Object.assign(new Error(LEAK), { code: Status.PERMISSION_DENIED, details: LEAK }), context).message).toContain('PERMISSION_DENIED');
  });

  it('still tells an etag mismatch and missing credentials apart by Google\'s text', () => {
    const context = { provider: 'g', secret: 'projects/p/secrets/s', method: 'DisableSecretVersion' as const, signal: live };
    expect(gcpError(Object.assign(new Error('x'), { code: Status.FAILED_PRECONDITION, details: 'etag mismatch' }), context).code).toBe('REKEY_ERR_CONFLICT');
    expect(gcpError(new Error('Could not load the default credentials.'), context).code).toBe('REKEY_ERR_DENIED');
  });
});
