import type { CredentialRef } from '../../src/core/credential.js';
import { ProviderError, RekeyError, type ErrorCode } from '../../src/core/errors.js';
import { outboundUrlProblem } from '../../src/core/kit/outbound-url.js';
import type { Call, IssuedRef, Issuer, JsonObject, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { HttpConfig, HttpIssuerBinding, HttpRequestSpec } from './http.schema.js';
import { readPath, render, renderJson, type Vars } from './template.js';

type Step = 'issue' | 'verify' | 'revoke';

/**
 * A templated issuer for SaaS key APIs: issue is one call whose JSON response holds the new key
 * and its id; revoke is one call naming that id; verify (optional) is one call made with the key.
 * The state holds the key's id only. Response bodies and rendered URLs never reach an error
 * message (they can hold the key).
 */
export class HttpIssuer implements Issuer {
  constructor(
    private readonly provider: string,
    private readonly config: HttpConfig,
    private readonly params: HttpIssuerBinding,
    private readonly credential: (ref: CredentialRef) => SecretValue,
  ) {}

  async issue(version: VersionRef, call: Call): Promise<{ value: SecretValue; state: JsonObject }> {
    const spec = this.config.issue;
    const response = await this.send('issue', spec, this.vars(version), version, call);
    if (!response.ok) throw this.statusError('issue', spec, response.status, version);
    let document: unknown;
    try {
      document = JSON.parse(await response.text());
    } catch (error) {
      throw this.error('REKEY_ERR_INVALID', version, `issue: ${spec.method} ${spec.url} did not answer JSON`, error);
    }
    const key = readPath(document, spec.valuePath);
    const id = readPath(document, spec.idPath);
    if (typeof key !== 'string' || !key) throw this.error('REKEY_ERR_INVALID', version, 'issue: no string at valuePath in the response');
    if ((typeof id !== 'string' || !id) && typeof id !== 'number') {
      throw this.error('REKEY_ERR_INVALID', version, 'issue: no string or number at idPath in the response');
    }
    // The id is kept as issuer state in PostgreSQL: it must not be the key itself.
    if (String(id) === key) throw this.error('REKEY_ERR_INVALID', version, 'issue: idPath yields the key itself; point it at the key id');
    return { value: SecretValue.of(key), state: { id: String(id) } };
  }

  /** Calls the verify endpoint with the key; without one, there is nothing to probe. */
  async verify(version: IssuedRef, value: SecretValue, call: Call): Promise<void> {
    const spec = this.config.verify;
    if (!spec) return;
    const vars = { ...this.vars(version), id: stateId(version.issuerState), value: value.reveal() };
    // The admin token proves nothing about the new key: sent only when the config asks.
    const response = await this.send('verify', spec, vars, version, call, spec.providerHeaders);
    await response.body?.cancel();
    const accepted = spec.expectStatus ? spec.expectStatus.includes(response.status) : response.ok;
    if (accepted) return;
    if (response.status === 429 || response.status >= 500) throw this.statusError('verify', spec, response.status, version);
    throw this.error('REKEY_ERR_VERIFY_FAILED', version, `verify: ${spec.method} ${spec.url} answered ${response.status}`);
  }

  /** Calls the revoke endpoint for the key's id; "gone" statuses are success. */
  async revoke(version: IssuedRef, call: Call): Promise<void> {
    const id = stateId(version.issuerState);
    if (id === undefined) return;
    const spec = this.config.revoke;
    const response = await this.send('revoke', spec, { ...this.vars(version), id }, version, call);
    await response.body?.cancel();
    if (response.ok || spec.goneStatus.includes(response.status)) return;
    throw this.statusError('revoke', spec, response.status, version);
  }

  private vars(version: VersionRef): Vars {
    const vars: Vars = {
      secret: version.secret,
      versionId: version.versionId,
      number: String(version.number),
      consumer: version.consumer,
    };
    for (const [key, value] of Object.entries(this.params.vars)) vars[`vars.${key}`] = value;
    return vars;
  }

  /** One call; `providerHeaders`: also send the provider-level headers (the admin token). */
  private async send(step: Step, spec: HttpRequestSpec, vars: Vars, version: VersionRef, call: Call, providerHeaders = true): Promise<Response> {
    let url: URL;
    const headers = new Headers();
    let body: string | undefined;
    let building = 'the url';
    try {
      url = new URL(render(spec.url, vars, encodeURIComponent), this.config.baseUrl);
      const common = providerHeaders ? Object.entries(this.config.headers) : [];
      for (const [name, parts] of [...common, ...Object.entries(spec.headers)]) {
        building = `header ${name}`;
        headers.set(name, parts.map((part) => (typeof part === 'string' ? render(part, vars) : this.credential(part).reveal())).join(''));
      }
      building = 'the body';
      if (spec.body !== undefined) {
        body = JSON.stringify(renderJson(spec.body, vars));
        if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      }
    } catch (error) {
      // Our own words only: the runtime's messages quote the rendered text, which can hold the key
      // or the admin token (undici: `Headers.set: "Bearer <key>" is an invalid header value`).
      if (error instanceof RekeyError) throw this.error(error.code, version, `${step}: ${error.message} in ${building} of ${spec.method} ${spec.url}`);
      throw this.error('REKEY_ERR_INVALID', version, `${step}: ${building} of ${spec.method} ${spec.url} is not valid once rendered (a control character in a value?)`);
    }
    // Checked again once rendered: a template may have built the host.
    const problem = outboundUrlProblem(url, this.config.insecure);
    if (problem) throw this.error('REKEY_ERR_CONFIG', version, `${step}: ${spec.method} ${spec.url} ${problem}`);
    try {
      // No redirects: following one would send the admin token to wherever it points.
      return await fetch(url, { method: spec.method, headers, body, signal: call.signal, redirect: 'manual' });
    } catch (error) {
      const timeout = call.signal.aborted || (error as Error).name === 'TimeoutError';
      throw this.error(timeout ? 'REKEY_ERR_TIMEOUT' : 'REKEY_ERR_UNAVAILABLE', version, `${step}: ${spec.method} ${spec.url} failed`, error);
    }
  }

  private statusError(step: Step, spec: HttpRequestSpec, status: number, version: VersionRef): ProviderError {
    const code: ErrorCode =
      status === 429
        ? 'REKEY_ERR_THROTTLED'
        : status >= 500
          ? 'REKEY_ERR_UNAVAILABLE'
          : status === 401 || status === 403
            ? 'REKEY_ERR_DENIED'
            : status === 404
              ? 'REKEY_ERR_NOT_FOUND'
              : 'REKEY_ERR_INVALID';
    return this.error(code, version, `${step}: ${spec.method} ${spec.url} answered ${status}`);
  }

  private error(code: ErrorCode, version: VersionRef, why: string, cause?: unknown): ProviderError {
    return new ProviderError(code, `secret ${version.secret} version ${version.versionId}: ${why}`, { provider: this.provider, cause });
  }
}

function stateId(state: JsonObject): string | undefined {
  return typeof state.id === 'string' && state.id ? state.id : undefined;
}
