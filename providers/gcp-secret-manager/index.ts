/**
 * `gcp-secret-manager`: a store on Google Secret Manager. See README.md for the config, the IAM
 * permissions it needs, why consumers read the `current` alias, and the calls per rotation.
 */
import { credentials } from '@grpc/grpc-js';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { GoogleAuth, PassThroughClient } from 'google-auth-library';
import { defineProvider } from '../../src/core/provider.js';
import { GcpSecretManagerStore } from './gcp-secret-manager.store.js';
import {
  gcpSecretManagerConfig,
  gcpSecretManagerStoreBinding,
  type GcpSecretManagerConfig,
  type GcpSecretManagerStoreBinding,
} from './gcp-secret-manager.schema.js';

export { GcpSecretManagerStore, INTENT_ANNOTATION, ROTATION_ANNOTATION, versionAnnotation } from './gcp-secret-manager.store.js';
export { deriveRotation, type DerivedRotation } from './gcp-rotation.js';
import { secretIdFor } from './gcp-names.js';

export { gcpSecretManagerConfig, gcpSecretManagerStoreBinding, type GcpSecretManagerConfig, type GcpSecretManagerStoreBinding };

type ClientOptions = NonNullable<ConstructorParameters<typeof SecretManagerServiceClient>[0]>;

/**
 * Client options for a provider instance. `rest` is the client's HTTP/1.1 fallback mode, whose
 * requests go through google-auth-library's transport (gaxios). In `insecure` mode the client gets
 * plaintext and google-auth-library's PassThroughClient, which adds no credentials, with the
 * universe domain given: without them the client would look for Application Default Credentials
 * and ask the metadata server for a universe domain.
 */
function clientOptions(config: GcpSecretManagerConfig): ClientOptions {
  const options: ClientOptions = {};
  if (config.apiEndpoint) options.apiEndpoint = config.apiEndpoint;
  if (config.port) options.port = config.port;
  if (config.transport === 'rest') options.fallback = true;
  if (config.insecure) {
    if (config.transport === 'rest') options.protocol = 'http';
    else options.sslCreds = credentials.createInsecure();
    options.auth = new GoogleAuth({ authClient: new PassThroughClient(), universeDomain: 'googleapis.com' });
  }
  return options;
}

export default defineProvider<GcpSecretManagerConfig, GcpSecretManagerStoreBinding>({
  type: 'gcp-secret-manager',
  summary: 'Store on Google Secret Manager: stages are the version aliases pending, current and previous',
  rotationMetadata: true,
  // Secret Manager's 600 writes a minute per project, 4 writes a rotation (+2 at removal): see README.md.
  fleetStartsPerSecond: 1,
  config: gcpSecretManagerConfig,
  bindings: { store: gcpSecretManagerStoreBinding },
  // Two managed secrets on one Google secret would move each other's `current` alias.
  storeOwns: ({ name }, client) => [secretIdFor(name, client)],
  open(config, ctx) {
    if (process.env.GOOGLE_SDK_NODE_LOGGING) {
      // The generated client logs whole requests at this level, AddSecretVersion payloads included.
      ctx.log.warn({}, 'GOOGLE_SDK_NODE_LOGGING is set: the Secret Manager client logs request payloads, i.e. secret values');
    }
    // One client (one gRPC channel, or one HTTP agent) per provider instance, shared by its secrets.
    const client = new SecretManagerServiceClient(clientOptions(config));
    return {
      store: ({ secret, params, client: perClient }) =>
        new GcpSecretManagerStore({
          client,
          provider: ctx.name,
          project: config.project,
          projectNumber: config.projectNumber,
          secretId: secretIdFor(params.name, perClient),
          topic: params.topic,
          destroy: config.destroy,
          timeoutMs: config.timeoutMs,
          locations: config.locations,
          log: ctx.log.child({ secret }),
        }),
      close: () => client.close(),
    };
  },
});
