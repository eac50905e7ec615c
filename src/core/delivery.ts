/**
 * What the delivery flows share (issue 17, docs/delivery.md): the grants of rekey.yaml's
 * `delivery:` section, the errors the HTTP adapters map to answers, and the first two steps of
 * every request, read top to bottom:
 *
 *   1. authenticate: the candidate grants name their authenticators; the presented credential
 *      must pass one of them (the first that accepts it gives the subject);
 *   2. admit: the subject's own rate limit, charged only once its credential passed every check,
 *      so failed authentications never use up an authenticated caller's allowance: the
 *      authenticator's remote check, if any (Subject.confirm: a TokenReview), comes before the
 *      charge and runs only for a subject within its limit, so a subject over it costs the
 *      remote side nothing and a credential the remote side refuses (a deleted pod's token)
 *      costs the subject nothing.
 *
 * Token exchange (token-exchange.ts) and value delivery (value-delivery.ts) go on from there.
 */
import { describeError, RekeyError } from './errors.js';
import type { Logger } from './logger.js';
import type { StateRepository, VersionRecord } from './model.js';
import type { Authenticator, Call, JsonObject, Subject } from './ports.js';
import type { ProviderResolver } from './resolved.js';
import type { SecretValue } from './secret-value.js';

/** A grant of rekey.yaml's `delivery.grants`: a token grant (`token`) or a value grant (`value`), never both. */
export interface GrantSpec {
  name: string;
  /** An entry of `delivery.authenticators`. */
  authenticator: string;
  /** Subject id globs (`*` matches any run of characters). */
  subjects: readonly string[];
  token?: {
    /** The managed secret whose issuer signs (Issuer.signJwt: jwt-signing-key). */
    signingKey: string;
    audience: string;
    ttlMs: number;
    /** Claims copied from the subject's verified claims (absent ones are left out), and fixed ones. */
    claims: { copy: readonly string[]; fixed: Readonly<Record<string, string | number | boolean>> };
  };
  value?: {
    /** The managed secret whose current value the subject may read (GET /v1/secrets/{name}). */
    secret: string;
    /** How long a client may use a value before asking again; the answer's expiry is never later than the next scheduled rotation. */
    ttlMs: number;
  };
}

/** rekey.yaml's `delivery:` section, validated. */
export interface DeliverySpec {
  /** `iss` of every minted token. */
  issuer: string;
  grants: Readonly<Record<string, GrantSpec>>;
}

/**
 * Why a delivery request was refused. `unverifiable`: no authenticator accepted the credential
 * and one could not verify it now (its issuer unreachable): answered as `unavailable` (the
 * credential may be one of its own), but counted against the source as a failed authentication,
 * so garbage sprayed during an outage is counted as at any other time.
 */
export type DeliveryCode = 'unauthenticated' | 'unverifiable' | 'no_grant' | 'forbidden' | 'rate_limited' | 'unavailable';

/** A refusal of a delivery request; the HTTP adapters answer each code with a fixed text. */
export class DeliveryError extends Error {
  constructor(
    readonly code: DeliveryCode,
    message: string,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/** A version that may be handed out (current, stored, not compromised) and its value. */
export interface Handable {
  version: VersionRecord;
  value: SecretValue;
}

/** What a hand-out relies on and what it records. */
export interface HandOut {
  /** Versions handed out (the value's, the signing key's): each must still be current and not compromised. */
  handed: readonly string[];
  /** Versions the answer relies on staying live (Subject.versions, a previous signing key that signed): each must still be live. */
  relied: readonly string[];
  /** The audit event; none for an answer that hands nothing out (a 304). */
  event?: { actor: string; action: string; secret: string; versionId: string; data: JsonObject };
}

export interface DeliveryDeps {
  repo: StateRepository;
  providers: ProviderResolver;
  authenticator(name: string): Promise<Authenticator>;
  /** Takes one request from the subject's allowance (`<authenticator>:<subject id>`); false when it is used up. */
  admit(subjectKey: string): boolean;
  /** Whether the subject's allowance has a request left, without taking it. */
  within(subjectKey: string): boolean;
  /**
   * The version of `secret` that may be handed out, with its value; undefined when there is none
   * (no current version, a compromised one, a secret removed from the config). May answer from
   * an in-process cache: {@link handOut} re-checks the version in PostgreSQL.
   */
  current(secret: string, call: Call): Promise<Handable | undefined>;
  /**
   * The versions of signing key `secret` that may sign (live-values.ts signingKeys: current
   * first, then previous ones newest first); undefined without a current one. May answer from
   * the in-process cache, like {@link current}.
   */
  signingKeys(secret: string, call: Call): Promise<readonly Handable[] | undefined>;
  /**
   * How long verifiers may cache the JWKS document (REKEY_JWKS_MAX_AGE): a version signs only
   * once it has been current that long, so every verifier's cached document holds its key.
   */
  publishLeadMs: number;
  /**
   * Checks and records a hand-out, and resolves once that is durably committed: in one
   * transaction, the versions of `entry` are checked (and share-locked, so a revocation commits
   * either before the check or after the record), then the audit event is appended. Answers
   * false, with nothing recorded, when a version failed the check, after forgetting what the
   * cache held of it, so the next read sees PostgreSQL.
   */
  handOut(entry: HandOut): Promise<boolean>;
  log: Logger;
  /** Per provider call. @defaultValue 10000 */
  timeoutMs?: number;
}

/**
 * The longest credential any authenticator is shown: 16 KiB, what a request header may hold, so
 * every credential `Authorization: Bearer` can carry fits (real ones are a few KB at most). A
 * longer one is refused unread: verifying a 1 MB token cost an authenticator 20 times a valid one.
 */
export const MAX_CREDENTIAL_LENGTH = 16 * 1024;

/** A subject and the authenticator that established it. */
export interface Authenticated {
  subject: Subject;
  authenticator: string;
}

/** Globs compiled, by glob: they come from rekey.yaml, so there are few. */
const compiled = new Map<string, RegExp>();

/** Whether a subject id matches a grant's glob (`*`: any run of characters, nothing else special). */
export function subjectMatches(glob: string, id: string): boolean {
  let pattern = compiled.get(glob);
  if (!pattern) {
    pattern = new RegExp(`^${glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
    // Globs live as long as the config that names them; a bound keeps a config churn from growing it for ever.
    if (compiled.size >= 1000) compiled.clear();
    compiled.set(glob, pattern);
  }
  return pattern.test(id);
}

/**
 * A provider call's context whose timeout starts when something first reads its signal: a
 * request answered from the delivery cache makes no provider call, and creating a timer for
 * each one cost more CPU than the rate limiter and the grant lookup together.
 */
export function callOf(deps: Pick<DeliveryDeps, 'timeoutMs'>): Call {
  return new LazyCall(deps.timeoutMs ?? 10_000);
}

/**
 * {@link callOf}'s context. A class, its getter on the prototype: V8 builds an object literal
 * with a getter on a slow path, about 1.6 us each here against 0.03 us for an instance, and
 * a request makes two or three; and it kept every such literal's getter closure (and the deps
 * it held) alive through the next two scavenges, so each was promoted to old space (a loop of
 * callOf alone: 115 bytes copied and 93 promoted per call, against about 1 with the class).
 */
class LazyCall implements Call {
  #signal: AbortSignal | undefined;

  constructor(private readonly timeoutMs: number) {}

  get signal(): AbortSignal {
    return (this.#signal ??= AbortSignal.timeout(this.timeoutMs));
  }
}

/**
 * Runs a hand-out `attempt` (undefined: a version it relied on was revoked or replaced between
 * the cached read and the recording) at most twice: the second reads PostgreSQL afresh. Both
 * attempts are one request: the second authenticates again (the version the proof relied on
 * may be the one that changed) but `attempt` gets deps whose `admit` charges each subject's
 * allowance once (and whose `within` holds for a subject charged already), so a failed check never
 * costs the caller a second request.
 * @throws DeliveryError `unavailable` when the second attempt fails its check too.
 */
export async function retryingStale<D extends DeliveryDeps, T>(deps: D, attempt: (deps: D) => Promise<T | undefined>): Promise<T> {
  const charged = new Map<string, boolean>();
  // deps with its own admit, the rest read through the prototype: a copy of every field cost more per request.
  const once = Object.create(deps) as D;
  once.admit = (subjectKey) => {
    if (!charged.has(subjectKey)) charged.set(subjectKey, deps.admit(subjectKey));
    return charged.get(subjectKey)!;
  };
  once.within = (subjectKey) => charged.get(subjectKey) ?? deps.within(subjectKey);
  const first = await attempt(once);
  if (first !== undefined) return first;
  const second = await attempt(once);
  if (second !== undefined) return second;
  throw new DeliveryError('unavailable', 'the versions changed while the request was answered');
}

/**
 * Steps 1 and 2: the subject `credential` proves to one of the authenticators `grants` name,
 * charged to its own allowance. One that cannot verify now (its issuer unreachable, its shared
 * secret without a live version) does not stop the others: a credential another accepts passes.
 * @throws DeliveryError `unauthenticated` (one answer for every reason; the reason is logged),
 *   `rate_limited`, `unverifiable` when none accepted and one could not verify (the credential
 *   may be one of its own, so it is not called invalid), or `unavailable` when one accepted it
 *   but its remote check (Subject.confirm) could not be made: the credential passed the local
 *   checks, so its caller is not counted as failing.
 */
export async function authenticate(deps: DeliveryDeps, grants: readonly GrantSpec[], credential: SecretValue): Promise<Authenticated> {
  if (credential.reveal().length > MAX_CREDENTIAL_LENGTH) {
    deps.log.info({ reason: 'credential too long' }, 'delivery request: credential refused');
    throw new DeliveryError('unauthenticated', 'the credential is not valid');
  }
  let unavailable = false;
  let accepted = false;
  for (const name of authenticatorsOf(grants)) {
    let subject: Subject | undefined;
    try {
      subject = await (await deps.authenticator(name)).authenticate(credential, callOf(deps));
      if (!storable(subject.id)) {
        // Signed, but the audit log could not record a hand-out to it, and its insert would fail the others batched with it.
        deps.log.info({ authenticator: name, reason: `authenticator ${name}: subject` }, 'delivery request: credential refused');
        continue;
      }
      const subjectKey = `${name}:${subject.id}`;
      if (subject.confirm) {
        // The remote check (a TokenReview) for a subject within its allowance only: one over it costs
        // the remote side nothing. Before the charge: a credential it refuses is a failed
        // authentication, which never touches the subject's allowance.
        if (!deps.within(subjectKey)) throw new DeliveryError('rate_limited', 'the subject is over its request limit');
        await subject.confirm(callOf(deps));
      }
      if (!deps.admit(subjectKey)) throw new DeliveryError('rate_limited', 'the subject is over its request limit');
    } catch (error) {
      if (error instanceof DeliveryError) throw error;
      if (error instanceof RekeyError && error.code === 'REKEY_ERR_DENIED') {
        deps.log.info({ authenticator: name, reason: error.message }, 'delivery request: credential refused');
      } else {
        deps.log.warn({ authenticator: name, error: describeError(error) }, 'delivery request: authenticator failed');
        unavailable = true;
        // Signed (the local checks passed), only the remote check could not be made.
        if (subject) accepted = true;
      }
      continue;
    }
    return { subject, authenticator: name };
  }
  if (unavailable) throw new DeliveryError(accepted ? 'unavailable' : 'unverifiable', 'the authenticator is unavailable');
  throw new DeliveryError('unauthenticated', 'the credential is not valid');
}

/** A NUL (which PostgreSQL's text and jsonb refuse) or a surrogate not in a pair (which jsonb refuses). */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether `id` can be written to the audit log as it is (its MAC is over the very string). */
function storable(id: string): boolean {
  return !UNSTORABLE.test(id);
}

/** Every grant of the section: a change stream may be opened under any of them. */
export function allGrants(delivery: DeliverySpec): readonly GrantSpec[] {
  return grantsOf(delivery, 'all', (_g): _g is GrantSpec => true);
}

/**
 * The secrets whose changes an authenticated subject is told of (the change stream): those its
 * value grants let it read, and the signing keys of its token grants (a revoked signing key
 * means its tokens are refused everywhere: the client gets new ones at once).
 */
export function followedSecrets(delivery: DeliverySpec, who: Authenticated): string[] {
  const mine = allGrants(delivery).filter((g) => grantFor([g], who));
  return [...new Set(mine.map((g) => g.value?.secret ?? g.token!.signingKey))];
}

/** Per list of grants (see {@link grantsOf}), the same grants followed by the rest of those of `all`. */
const preferred = new WeakMap<readonly GrantSpec[], readonly GrantSpec[]>();

/**
 * The grants whose authenticators a request is authenticated against: those of `all` (every
 * token grant, every value grant), `first` (the grants that serve what was asked for) first,
 * so a credential two authenticators accept is taken by the one that can serve it. Every
 * request tries the same authenticators, whatever it asks for, so an unauthenticated caller
 * gets the same answer for an audience or a secret no grant serves as for one that is served.
 * `first` must be a list of {@link grantsOf} (kept per list); an empty one gives `all`.
 */
export function candidates<G extends GrantSpec>(first: readonly G[], all: readonly G[]): readonly G[] {
  if (!first.length) return all;
  let list = preferred.get(first);
  if (!list) {
    list = [...first, ...all.filter((g) => !first.includes(g))];
    preferred.set(first, list);
  }
  return list as readonly G[];
}

/** Per list of grants (see {@link grantsOf}), the authenticators they name, each once, in order. */
const authenticators = new WeakMap<readonly GrantSpec[], readonly string[]>();

function authenticatorsOf(grants: readonly GrantSpec[]): readonly string[] {
  let names = authenticators.get(grants);
  if (!names) {
    names = [...new Set(grants.map((g) => g.authenticator))];
    authenticators.set(grants, names);
  }
  return names;
}

/** Lists of grants by section and key, made once per applied section (it is frozen; a new revision is a new object). */
const grantLists = new WeakMap<DeliverySpec, Map<string, readonly GrantSpec[]>>();

/**
 * The grants of `delivery` that `pick` selects, listed once per section and `key` (the same
 * array each time, so what is derived from it is kept too): requests ask for the same few lists.
 */
export function grantsOf<G extends GrantSpec>(delivery: DeliverySpec, key: string, pick: (grant: GrantSpec) => grant is G): readonly G[] {
  let lists = grantLists.get(delivery);
  if (!lists) {
    lists = new Map();
    grantLists.set(delivery, lists);
  }
  let list = lists.get(key);
  if (!list) {
    list = Object.values(delivery.grants).filter(pick);
    // Only lists some grant is in are kept, so their keys are the section's own: a key no grant
    // answers comes from a request (an audience, before authentication) and may be as long as its body.
    if (!list.length) return list as readonly G[];
    // A bound all the same: it costs nothing while the keys are the section's.
    if (lists.size >= 1000) lists.clear();
    lists.set(key, list);
  }
  return list as readonly G[];
}

/** The grant of `grants` that serves `who`: the first of its authenticator whose subject globs match. */
export function grantFor<G extends GrantSpec>(grants: readonly G[], who: Authenticated): G | undefined {
  return grants.find((g) => g.authenticator === who.authenticator && g.subjects.some((glob) => subjectMatches(glob, who.subject.id)));
}
