/**
 * client-key: an authenticator for per-client keys rekey itself issues (a secret with
 * `clients:`, one key per client, each rotated and revocable alone). A client presents its own
 * key and gets a short-lived token (POST /v1/token) or a value (GET /v1/secrets/{name}).
 */
import { defineProvider } from '../../src/core/provider.js';
import { ClientKeyAuthenticator } from './client-key.authenticator.js';
import { clientKeyBinding, clientKeyConfig, type ClientKeyBinding, type ClientKeyConfig } from './client-key.schema.js';

export default defineProvider<ClientKeyConfig, never, never, never, ClientKeyBinding>({
  type: 'client-key',
  summary: 'Authenticator of per-client keys (a secret with clients:): each client presents its own live key, revocable alone',
  config: clientKeyConfig,
  bindings: { authenticator: clientKeyBinding },
  open(_config, ctx) {
    return { authenticator: ({ name, params }) => new ClientKeyAuthenticator(name, params, (value) => ctx.liveSecretOf(value)) };
  },
});
