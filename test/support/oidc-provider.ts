/**
 * A real OpenID Connect provider on loopback for tests: the certified `oidc-provider` package
 * behind a node HTTP server on a free port. Used by the delivery oidc authenticator's test
 * (client credentials) and the dashboard's OIDC sign-in (authorization code, its development
 * login and consent pages).
 */
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

export interface LocalIdp {
  /** The issuer as the provider names itself (its own address unless another was asked for). */
  issuer: string;
  /** Where it listens. */
  url: string;
  provider: Provider;
  close(): Promise<void>;
}

/**
 * Starts a provider with `configuration` (signing keys given as `jwks`); `issuer` defaults to its
 * own address. `middleware`, when given, is added with provider.use: it sees each request before
 * the provider does (an outage to play). `host` is the loopback address it listens on: 127.0.0.2
 * makes it another site than rekey on 127.0.0.1, as a real provider is (a browser then keeps
 * SameSite=Strict cookies off the provider's redirects back).
 */
export async function startIdp(configuration: Configuration, issuer?: string, middleware?: Parameters<Provider['use']>[0], host = '127.0.0.1'): Promise<LocalIdp> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const url = `http://${host}:${(server.address() as { port: number }).port}`;
  const provider = new Provider(issuer ?? url, configuration);
  if (middleware) provider.use(middleware);
  const handle = provider.callback();
  server.on('request', (request, response) => void handle(request, response));
  return {
    issuer: issuer ?? url,
    url,
    provider,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An RS256 signing key for a provider's `jwks`. */
export async function rsaKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}
