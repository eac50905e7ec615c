// DESIGN.md trust boundary: `${env:NAME}` resolves only allowed names, never rekey's own settings.
// apply refuses a config naming them (config-trust.test.ts); this is the second check, at
// resolution, for a config stored before that rule: it must refuse whatever the environment holds.
import { describe, expect, it } from 'vitest';
import { envIssues, readCredential } from '../../src/config/environment.js';

const env = {
  REKEY_AUDIT_KEY: 'audit-key-value',
  REKEY_LOCAL_STORE_KEY: 'local-store-key-value',
  REKEY_SOMETHING_NEW: 'future-setting-value',
  DATABASE_URL: 'postgresql://rekey:pw@db/rekey',
  AWS_SECRET_ACCESS_KEY: 'aws-secret-value',
  PGPASSWORD: 'pg-password-value',
  ACME_TOKEN: 'acme-token-value',
};

describe('readCredential', () => {
  it.each(['REKEY_AUDIT_KEY', 'REKEY_LOCAL_STORE_KEY', 'REKEY_SOMETHING_NEW', 'DATABASE_URL', 'AWS_SECRET_ACCESS_KEY', 'PGPASSWORD'])(
    'refuses ${env:%s} although it is set, naming the field and not the value',
    (name) => {
      const error = (() => {
        try {
          readCredential({ kind: 'env', name }, env, 'providers.acme.headers.X-Key');
        } catch (e) {
          return e as Error & { code?: string };
        }
        return undefined;
      })();
      expect(error?.code).toBe('REKEY_ERR_CONFIG');
      expect(error?.message).toContain(`providers.acme.headers.X-Key: \${env:${name}} is rekey's own setting or credential`);
      expect(error?.message).not.toContain(env[name as keyof typeof env]);
    },
  );

  it('resolves any other variable', () => {
    expect(readCredential({ kind: 'env', name: 'ACME_TOKEN' }, env, 'providers.acme').reveal()).toBe('acme-token-value');
  });
});

describe('env.allow', () => {
  const issues = (name: string, allow: string[]) => envIssues({ providers: { acme: { token: `\${env:${name}}` } } }, allow).map((i) => `${i.path.join('.')}: ${i.message}`);

  it('a name allows that variable only; a prefix needs its *', () => {
    expect(issues('ACME_TOKEN', ['ACME_TOKEN'])).toEqual([]);
    expect(issues('ACME_TOKEN_OLD', ['ACME_TOKEN'])).toEqual(['providers.acme.token: ${env:ACME_TOKEN_OLD} is not allowed: list ACME_TOKEN_OLD under env.allow to let this config read it']);
    expect(issues('ACME', ['ACME_*'])).toHaveLength(1);
    expect(issues('ACME_TOKEN_OLD', ['ACME_*'])).toEqual([]);
  });

  it("no entry, * included, lets a config read rekey's own variables", () => {
    for (const name of ['REKEY_AUDIT_KEY', 'DATABASE_URL', 'PGPASSWORD']) expect(issues(name, ['*', name])).toEqual([`providers.acme.token: \${env:${name}} is rekey's own setting or credential: a config may never read it`]);
  });
});
