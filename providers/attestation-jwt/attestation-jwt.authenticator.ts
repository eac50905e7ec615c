import { createSecretKey, hash, type KeyObject } from 'node:crypto';
import { ProviderError } from '../../src/core/errors.js';
import { jwtRefusalReason } from '../../src/core/kit/jwt-errors.js';
import type { Authenticator, Call, JsonObject, Subject } from '../../src/core/ports.js';
import type { LiveValue } from '../../src/core/provider.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { JWTClaimVerificationOptions, JWTPayload } from 'jose';
import type { AttestationJwtBinding } from './attestation-jwt.schema.js';
import { verifyHs256 } from './hs256.js';

/** Fewer key bytes than this (hmac-key's own minimum) verify nothing: an empty or short key is one anyone could guess. */
const MIN_KEY_BYTES = 16;

/** Verified tokens remembered at most (see AttestationJwtAuthenticator.verified); the oldest is forgotten first. */
const MAX_VERIFIED = 10_000;

/** Whether two lists of live values are the same versions with the same value objects, in order. */
function sameValues(a: readonly LiveValue[], b: readonly LiveValue[]): boolean {
  return a === b || (a.length === b.length && a.every((v, i) => v.versionId === b[i]!.versionId && v.value === b[i]!.value));
}

/** A token that verified: the key (a live version's value) its MAC matched, and its claims. */
interface Verified {
  key: KeyObject;
  versionId: string;
  subject: string;
  claims: Readonly<JWTPayload>;
}

/**
 * Verifies an HS256 JWT (hs256.ts; the algorithm is pinned: `none`, RS256 and the rest are refused)
 * against each live version of the shared secret, current first: a token signed with the
 * previous version still passes during its grace, one signed with a compromised or retired
 * version never does. Then exp, nbf, iat (present, not older than maxAgeSeconds), aud and iss.
 * The subject names the version that verified, so rekey re-checks it is still live when it
 * records the hand-out (the values may come from a cache). A signature that matches none of
 * the live values asks for them again (ProviderContext.liveValues' recheck, throttled there)
 * and is tried against what changed, so a token signed with a version promoted a moment ago
 * passes at once.
 */
export class AttestationJwtAuthenticator implements Authenticator {
  /** Each live value's HMAC key, imported once: the delivery cache hands the same value objects out. */
  private readonly keys = new WeakMap<SecretValue, KeyObject>();

  /**
   * Tokens that verified, by the SHA-256 of the token (the token itself is not kept): a client
   * presents the same token on every request until it expires, and the MAC and jose's checks
   * cost more CPU than the rest of a value request in rekey. A remembered token passes again
   * only under the key that verified it, while that version is still one of the live
   * values (read afresh each time, as for any token), and while its time claims still pass
   * (see {@link timely}); anything else takes the full verification, which refuses it with jose's
   * own reason. The hand-out journal re-checks the version it names in PostgreSQL, as for any token.
   */
  private readonly verified = new Map<string, Verified>();

  /** The live values the remembered tokens were last checked against (see {@link forgetStale}). */
  private seen: readonly LiveValue[] = [];

  /** The claim checks, made once: they depend on the binding only. */
  private readonly claims: JWTClaimVerificationOptions;

  constructor(
    private readonly name: string,
    private readonly params: AttestationJwtBinding,
    private readonly liveValues: (secret: string, call: Call, recheck?: boolean) => Promise<LiveValue[]>,
  ) {
    this.claims = {
      audience: params.audience,
      ...(params.issuer ? { issuer: params.issuer } : {}),
      requiredClaims: ['exp', 'iat'],
      maxTokenAge: params.maxAgeSeconds,
      clockTolerance: params.clockToleranceSeconds,
    };
  }

  async authenticate(credential: SecretValue, call: Call): Promise<Subject> {
    const values = await this.live(call, false);
    const token = credential.reveal();
    const digest = hash('sha256', token, 'base64');
    const held = this.verified.get(digest);
    if (held) {
      if (this.timely(held.claims) && values.some((v) => v.versionId === held.versionId && this.key(v.value).equals(held.key))) {
        return { id: held.subject, claims: held.claims as JsonObject, versions: [held.versionId] };
      }
      this.verified.delete(digest);
    }
    const first = this.verify(token, digest, values);
    if (first.subject || first.reason !== 'signature') return this.answer(first);
    // A recheck that cannot be read leaves the refusal as it was.
    const again = await this.live(call, true).catch(() => values);
    return sameValues(again, values) ? this.answer(first) : this.answer(this.verify(token, digest, again));
  }

  /** The live values (rechecked: see ProviderContext.liveValues), the remembered tokens of versions no longer among them forgotten. */
  private async live(call: Call, recheck: boolean): Promise<LiveValue[]> {
    const values = await this.liveValues(this.params.secret, call, recheck).catch((cause: unknown) => {
      throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: the versions of ${this.params.secret} cannot be read`, { provider: this.name, cause });
    });
    if (!values.length) throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: ${this.params.secret} has no live version`, { provider: this.name });
    if (!sameValues(values, this.seen)) this.forgetStale(values);
    return values;
  }

  /**
   * Verifies `token` against each of `values` in order: the subject of the first that verifies,
   * or why it was refused (undefined when no value has a key long enough to try).
   * @throws ProviderError REKEY_ERR_DENIED when the token verified but has no subject claim.
   */
  private verify(token: string, digest: string, values: readonly LiveValue[]): { subject?: Subject; reason?: string } {
    let reason: string | undefined;
    for (const { versionId, value } of values) {
      // A value that decodes to too few bytes (not base64 under `encoding: base64` decodes to none) is skipped, never tried.
      const key = this.key(value);
      if ((key.symmetricKeySize ?? 0) < MIN_KEY_BYTES) continue;
      try {
        const payload = Object.freeze(verifyHs256(token, key, this.claims));
        const id = payload[this.params.subjectClaim];
        if (typeof id !== 'string' || !id) throw this.denied('subject');
        this.remember(digest, { key, versionId, subject: id, claims: payload });
        return { subject: { id, claims: payload as JsonObject, versions: [versionId] } };
      } catch (error) {
        if (error instanceof ProviderError) throw error;
        reason = jwtRefusalReason(error);
        // Only a signature that does not match this version sends us to the next one.
        if (reason !== 'signature') break;
      }
    }
    return { reason };
  }

  private answer({ subject, reason }: { subject?: Subject; reason?: string }): Subject {
    if (subject) return subject;
    if (reason === undefined) throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: ${this.params.secret} has no live version with a key of ${MIN_KEY_BYTES} bytes or more`, { provider: this.name });
    throw this.denied(reason);
  }

  /**
   * Whether the time claims of a token that verified still pass: jose's checks of exp, nbf and
   * iat (maxTokenAge) against the same clock, in whole seconds, with the same tolerance (jose's
   * validateClaimsSet). exp and iat are required, so a verified token has both as numbers.
   */
  private timely(claims: Readonly<JWTPayload>): boolean {
    const now = Math.floor(Date.now() / 1000);
    const tolerance = this.params.clockToleranceSeconds;
    const age = now - claims.iat!;
    return (claims.nbf === undefined || claims.nbf <= now + tolerance) && claims.exp! > now - tolerance && age - tolerance <= this.params.maxAgeSeconds && age >= -tolerance;
  }

  /**
   * Forgets the remembered tokens of a version that is no longer live (or whose key changed),
   * once the live values are seen to have changed: they could not pass again (the version check
   * comes first), but each held its version's KeyObject until 10,000 newer tokens pushed it out.
   * Tokens of a version still live with an equal key are kept, holding the new value's key.
   */
  private forgetStale(values: readonly LiveValue[]): void {
    this.seen = values;
    const live = new Map(values.map((v) => [v.versionId, this.key(v.value)]));
    /** Whether a held key equals its version's live one: compared once per held key object. */
    const equal = new Map<KeyObject, boolean>();
    for (const [digest, held] of this.verified) {
      const key = live.get(held.versionId);
      if (key === held.key) continue;
      let same = key !== undefined && equal.get(held.key);
      if (key !== undefined && same === undefined) {
        same = key.equals(held.key);
        equal.set(held.key, same);
      }
      if (same && key) held.key = key;
      else this.verified.delete(digest);
    }
  }

  private remember(digest: string, verified: Verified): void {
    if (this.verified.size >= MAX_VERIFIED) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(digest, verified);
  }

  private key(value: SecretValue): KeyObject {
    let key = this.keys.get(value);
    if (!key) {
      const text = value.reveal();
      key = createSecretKey(Buffer.from(text, this.params.encoding));
      this.keys.set(value, key);
    }
    return key;
  }

  private denied(reason: string): ProviderError {
    return new ProviderError('REKEY_ERR_DENIED', `authenticator ${this.name}: ${reason}`, { provider: this.name });
  }
}
