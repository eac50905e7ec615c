/**
 * `gcp-secret-manager`: a store on Google Secret Manager. See README.md for the config, the IAM
 * permissions it needs, why consumers read the `current` alias, and the calls per rotation.
 */
import { credentials } from '@grpc/grpc-js';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
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

export { parseSecretResourceName, referencesSecret, secretIdFor, secretResourceName, type SecretResourceName } from './gcp-names.js';
export { gcpSecretManagerConfig, gcpSecretManagerStoreBinding, type GcpSecretManagerConfig, type GcpSecretManagerStoreBinding };

type ClientOptions = NonNullable<ConstructorParameters<typeof SecretManagerServiceClient>[0]>;

/**
 * Stands in for google-auth-library in `insecure` mode. Without it the client would look for
 * Application Default Credentials and ask the metadata server for a universe domain.
 */
function noAuth(project: string): ClientOptions['auth'] {
  const headers = () => Promise.resolve(new Headers());
  return {
    getClient: () => Promise.resolve({ getRequestHeaders: headers }),
    getRequestHeaders: headers,
    getProjectId: () => Promise.resolve(project),
    getUniverseDomain: () => Promise.resolve('googleapis.com'),
  } as unknown as ClientOptions['auth'];
}

export default defineProvider<GcpSecretManagerConfig, GcpSecretManagerStoreBinding>({
  type: 'gcp-secret-manager',
  summary: 'Store on Google Secret Manager: stages are the version aliases pending, current and previous',
  config: gcpSecretManagerConfig,
  bindings: { store: gcpSecretManagerStoreBinding },
  open(config, ctx) {
    const log = ctx.log.child({ provider: ctx.name });
    if (process.env.GOOGLE_SDK_NODE_LOGGING) {
      // The generated client logs whole requests at this level, AddSecretVersion payloads included.
      log.warn({}, 'GOOGLE_SDK_NODE_LOGGING is set: the Secret Manager client logs request payloads, i.e. secret values');
    }
    const options: ClientOptions = {};
    if (config.apiEndpoint) options.apiEndpoint = config.apiEndpoint;
    if (config.port) options.port = config.port;
    if (config.insecure) {
      options.sslCreds = credentials.createInsecure();
      options.auth = noAuth(config.project);
    }
    // One client (one gRPC channel) per provider instance, shared by its secrets.
    const client = new SecretManagerServiceClient(options);
    return {
      store: ({ secret, params, client: perClient }) =>
        new GcpSecretManagerStore({
          client,
          provider: ctx.name,
          project: config.project,
          secretId: secretIdFor(params.name, perClient),
          topic: params.topic,
          destroy: config.destroy,
          maxAttempts: config.maxAttempts,
          timeoutMs: config.timeoutMs,
          locations: config.locations,
          log: log.child({ secret }),
        }),
      close: () => client.close(),
    };
  },
});
