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

  it('over REST, reads the google.rpc.Status in the body before the HTTP status, and copies neither body nor text', () => {
    const context = { provider: 'g', secret: 'projects/p/secrets/s', method: 'AccessSecretVersion' as const, signal: live };
    // google-auth-library's transport: `code` and `status` are the HTTP status, the message is the body.
    const rest = (status: number, body: string) => gcpError(Object.assign(new Error(body), { code: status, status }), context);
    const body = (status: string) => JSON.stringify({ error: { code: 400, message: LEAK, status } });
    expect(rest(400, body('FAILED_PRECONDITION')).code).toBe('REKEY_ERR_INVALID');
    expect(gcpError(Object.assign(new Error(body('FAILED_PRECONDITION')), { status: 400 }), { ...context, method: 'UpdateSecret' }).code).toBe('REKEY_ERR_CONFLICT');
    expect(rest(409, body('ALREADY_EXISTS')).code).toBe('REKEY_ERR_CONFLICT');
    expect([rest(502, `<html>${LEAK}</html>`).code, rest(418, LEAK).code, rest(401, '').code]).toEqual(['REKEY_ERR_UNAVAILABLE', 'REKEY_ERR_INVALID', 'REKEY_ERR_DENIED']);
    const error = rest(429, body('RESOURCE_EXHAUSTED'));
    expect([error.code, error.message]).toEqual(['REKEY_ERR_THROTTLED', expect.stringContaining('HTTP 429 RESOURCE_EXHAUSTED')]);
    for (const e of [error, rest(503, LEAK), rest(400, body(LEAK))]) expect(describeError(e)).not.toContain(LEAK);
  });

  it('still tells an etag mismatch and missing credentials apart by Google\'s text', () => {
    const context = { provider: 'g', secret: 'projects/p/secrets/s', method: 'DisableSecretVersion' as const, signal: live };
    expect(gcpError(Object.assign(new Error('x'), { code: Status.FAILED_PRECONDITION, details: 'etag mismatch' }), context).code).toBe('REKEY_ERR_CONFLICT');
    expect(gcpError(new Error('Could not load the default credentials.'), context).code).toBe('REKEY_ERR_DENIED');
  });
});
