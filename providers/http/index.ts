/**
 * http: a templated issuer for SaaS key APIs (create a key, delete it by id, probe it), for
 * services without a dedicated provider.
 */
import { defineProvider } from '../../src/core/provider.js';
import { HttpIssuer } from './http.issuer.js';
import { httpConfig, httpIssuerBinding, type HttpConfig, type HttpIssuerBinding } from './http.schema.js';

export default defineProvider<HttpConfig, never, HttpIssuerBinding>({
  type: 'http',
  summary: 'Any SaaS key API: templated create, revoke-by-id and probe calls over HTTPS',
  config: httpConfig,
  bindings: { issuer: httpIssuerBinding },
  open(config, ctx) {
    return { issuer: ({ params }) => new HttpIssuer(ctx.name, config, params, (ref) => ctx.credential(ref)) };
  },
});
