/**
 * `targets: [{ provider: k8s, publish: jwks, key: jwks.json }]`: the target never sees the
 * value (a private signing key). Each deploy or retire instead sends it the JWKS document
 * of the secret's live versions (pending, current, previous, minus the one retired),
 * built from the issuer's public keys (Issuer.publicKey). The wrapped target holds one
 * document, replaced at every change, fingerprinted as itself.
 */
import { RekeyError } from './core/errors.js';
import type { Fingerprinter } from './core/fingerprint.js';
import type { Call, DeployedEntry, Issuer, JsonObject, Target, VersionRef } from './core/ports.js';
import { SecretValue } from './core/secret-value.js';
import type { Db } from './db/client.js';

const LIVE = ['pending', 'current', 'previous'] as const;

/**
 * The public keys (Issuer.publicKey) of the live versions of managed secrets, newest first
 * per secret: of one `secret` or all, optionally `without` one version. `issuerOf` is asked
 * once per secret; a secret whose issuer publishes no keys contributes none.
 */
export async function liveKeys(
  db: Db,
  issuerOf: (secret: string) => Promise<Issuer | undefined>,
  o: { secret?: string; without?: string } = {},
): Promise<JsonObject[]> {
  const versions = await db.version.findMany({
    where: { state: { in: [...LIVE] }, secret: { removedAt: null, ...(o.secret ? { name: o.secret } : {}) }, ...(o.without ? { id: { not: o.without } } : {}) },
    orderBy: [{ secretId: 'asc' }, { number: 'desc' }],
    select: { issuerState: true, secret: { select: { name: true } } },
  });
  const issuers = new Map<string, Promise<Issuer | undefined>>();
  const keys: JsonObject[] = [];
  for (const version of versions) {
    const name = version.secret.name;
    if (!issuers.has(name)) issuers.set(name, issuerOf(name));
    const key = (await issuers.get(name))?.publicKey?.((version.issuerState ?? {}) as JsonObject);
    if (key) keys.push(key);
  }
  return keys;
}

export class JwksPublishingTarget implements Target {
  constructor(
    private readonly inner: Target,
    private readonly issuer: Issuer,
    private readonly db: Db,
    private readonly fingerprint: Fingerprinter,
    private readonly where: string,
  ) {
    if (!issuer.publicKey) throw new RekeyError('REKEY_ERR_CONFIG', `${where}: publish: jwks needs an issuer that publishes public keys (jwt-signing-key)`);
  }

  async deploy(version: VersionRef, _value: SecretValue, call: Call): Promise<void> {
    const doc = await this.document(version.secret);
    await this.inner.deploy(doc.ref(version), doc.value, call);
  }

  async verify(version: VersionRef, _value: SecretValue, call: Call): Promise<void> {
    const doc = await this.document(version.secret);
    await this.inner.verify(doc.ref(version), doc.value, call);
  }

  /** Retiring a version publishes the document without it. */
  async retire(version: VersionRef, call: Call): Promise<void> {
    const doc = await this.document(version.secret, version.versionId);
    await this.inner.deploy(doc.ref(version), doc.value, call);
  }

  listDeployed(call: Call): Promise<DeployedEntry[]> {
    return this.inner.listDeployed(call);
  }

  private async document(secret: string, without?: string) {
    const keys = await liveKeys(this.db, () => Promise.resolve(this.issuer), { secret, ...(without ? { without } : {}) });
    const value = SecretValue.of(JSON.stringify({ keys }));
    const fingerprint = this.fingerprint(value);
    return { value, ref: (version: VersionRef): VersionRef => ({ ...version, fingerprint }) };
  }
}
