/**
 * http: a templated issuer for SaaS key APIs (create a key, delete it by id, probe it), for
 * services without a dedicated provider.
 */
import { defineProvider } from '../../src/core/provider.js';
import { HttpIssuer } from './http.issuer.js';
import { httpConfig, httpIssuerBinding, variablesOfConfig, type HttpConfig, type HttpIssuerBinding } from './http.schema.js';

export default defineProvider<HttpConfig, never, HttpIssuerBinding>({
  type: 'http',
  summary: 'Any SaaS key API: templated create, revoke-by-id and probe calls over HTTPS',
  config: httpConfig,
  bindings: { issuer: httpIssuerBinding },
  // A {{vars.<key>}} the binding does not give fails every call that uses it (a revoke too): refused at apply.
  issuerProblem: ({ vars }, config) => {
    const missing = [...new Set(variablesOfConfig(config))].filter((name) => name.startsWith('vars.') && !Object.hasOwn(vars, name.slice(5)));
    return missing.length ? `the templates of this provider use ${missing.map((name) => `{{${name}}}`).join(', ')}: give ${missing.length > 1 ? 'them' : 'it'} in the binding's vars` : undefined;
  },
  open(config, ctx) {
    return { issuer: ({ params }) => new HttpIssuer(ctx.name, config, params, (ref) => ctx.credential(ref)) };
  },
});
