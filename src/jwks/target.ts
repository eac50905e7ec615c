/**
 * `targets: [{ provider: k8s, publish: jwks, key: jwks.json }]`: the target never sees the
 * value (a private signing key). Each deploy or retire instead sends it the JWKS document
 * of the secret's live versions (pending, current, previous, minus the one retired),
 * built from the issuer's public keys (Issuer.publicKey). The wrapped target holds one
 * document, replaced at every change, fingerprinted as itself.
 */
import { RekeyError } from '../core/errors.js';
import type { Fingerprinter } from '../core/fingerprint.js';
import type { Call, Inspection, Issuer, JsonObject, Target, VersionRef } from '../core/ports.js';
import { SecretValue } from '../core/secret-value.js';
import type { Db } from '../db/client.js';

/**
 * The public keys (Issuer.publicKey) of the live versions of managed secrets that are not
 * reported leaked (pending, current, previous until its grace ends), newest first per secret: of one `secret` or all, optionally `without` one version. `issuerOf` is asked
 * once per secret; a secret whose issuer publishes no keys contributes none.
 */
export async function liveKeys(
  db: Db,
  issuerOf: (secret: string) => Promise<Issuer | undefined>,
  o: { secret?: string; without?: string } = {},
): Promise<JsonObject[]> {
  return (await published(db, issuerOf, o)).keys;
}

/** liveKeys(), with the ids of the versions whose keys are in it. */
async function published(
  db: Db,
  issuerOf: (secret: string) => Promise<Issuer | undefined>,
  o: { secret?: string; without?: string },
): Promise<{ keys: JsonObject[]; versionIds: string[] }> {
  const versions = await db.version.findMany({
    where: {
      // A previous version leaves when its grace ends, whether or not its retirement has run yet (a
      // backlog, workers down): no token it signed lives longer (token-exchange.ts), as isLive() counts it.
      OR: [{ state: { in: ['pending', 'current'] } }, { state: 'previous', graceEndsAt: { gt: new Date() } }],
      // A version reported leaked leaves at once, though it stays current until its replacement is promoted.
      compromisedAt: null,
      secret: { removedAt: null, ...(o.secret ? { name: o.secret } : {}) },
      ...(o.without ? { id: { not: o.without } } : {}),
    },
    orderBy: [{ secretId: 'asc' }, { number: 'desc' }],
    select: { id: true, issuerState: true, secret: { select: { name: true } } },
  });
  const issuers = new Map<string, Promise<Issuer | undefined>>();
  const keys: JsonObject[] = [];
  const versionIds: string[] = [];
  for (const version of versions) {
    const name = version.secret.name;
    if (!issuers.has(name)) issuers.set(name, issuerOf(name));
    const found = (await issuers.get(name))?.publicKey?.((version.issuerState ?? {}) as JsonObject);
    const key = found && publicPart(found);
    if (!key) continue;
    keys.push(key);
    versionIds.push(version.id);
  }
  return { keys, versionIds };
}

/** Members only a private or a symmetric JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv']);

/**
 * What of `key` a JWKS document may carry, whatever the issuer returned: its members minus the
 * private ones; nothing for a symmetric (`oct`) key, which has no public part, or for what is not
 * a JWK. An issuer's publicKey() should return a public JWK already: this is the last line, in one place.
 */
function publicPart(key: JsonObject): JsonObject | undefined {
  if (typeof key.kty !== 'string' || key.kty === 'oct') return undefined;
  return Object.fromEntries(Object.entries(key).filter(([member]) => !PRIVATE_MEMBERS.has(member)));
}

export class JwksPublishingTarget implements Target {
  /**
   * The wrapped target holds the document, not versions: when it holds the document of the
   * live versions it holds all of them (by versionId), otherwise none, so the drift check
   * publishes the document again. Only when the wrapped target can be inspected.
   */
  readonly inspect?: (call: Call) => Promise<Inspection>;

  constructor(
    private readonly inner: Target,
    private readonly issuer: Issuer,
    private readonly db: Db,
    private readonly fingerprint: Fingerprinter,
    private readonly where: string,
    secret: string,
  ) {
    if (!issuer.publicKey) throw new RekeyError('REKEY_ERR_CONFIG', `${where}: publish: jwks needs an issuer that publishes public keys (jwt-signing-key)`);
    const inspectInner = inner.inspect?.bind(inner);
    if (inspectInner) {
      this.inspect = async (call) => {
        const [held, doc] = await Promise.all([inspectInner(call), this.document(secret)]);
        const current = held.entries.some((entry) => entry.fingerprint === doc.fingerprint);
        return { entries: current ? doc.versionIds.map((versionId) => ({ versionId })) : [], holds: 'all' };
      };
    }
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

  private async document(secret: string, without?: string) {
    const { keys, versionIds } = await published(this.db, () => Promise.resolve(this.issuer), { secret, ...(without ? { without } : {}) });
    const value = SecretValue.of(JSON.stringify({ keys }));
    const fingerprint = this.fingerprint(value);
    return { value, fingerprint, versionIds, ref: (version: VersionRef): VersionRef => ({ ...version, fingerprint }) };
  }
}
