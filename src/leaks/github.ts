/**
 * POST /webhooks/github-secret-scanning: GitHub's secret scanning partner program.
 *
 * GitHub POSTs a JSON array of `{token, type, url, source}` matches, signed with ECDSA
 * P-256 / SHA-256 over the raw body: `Github-Public-Key-Signature` (base64 DER) made with
 * the key `Github-Public-Key-Identifier` names. We answer in GitHub's feedback format, one
 * `{token_hash, token_type, label}` per match: `true_positive` for a token rekey issued
 * (live or not), `false_positive` otherwise; token_hash is the SHA-256 (hex) of the token.
 * https://docs.github.com/en/code-security/secret-scanning/secret-scanning-partnership-program/secret-scanning-partner-program
 *
 * GitHub sends no delivery id, so a delivery is named by the SHA-256 of its body: a
 * redelivery of the same body is a duplicate, per token. Within a delivery, the tokens rekey
 * issued are reported first, whatever their place in it: the rest (unknown strings in our
 * format, which anyone can make GitHub send) are recorded after them.
 */
import { verify } from 'node:crypto';
import type { GithubConfig } from '../config/leaks.js';
import { TOKEN_PREFIX } from '../api/tokens.js';
import { forEachBounded } from '../core/bounded.js';
import { RekeyError } from '../core/errors.js';
import { SecretValue } from '../core/secret-value.js';
import { header, parseJson, type Receiver, Rejection, sha256Hex } from './receiver.js';
import { isToken } from './report.js';

/** Matches per request we accept; GitHub batches, but a 1 MiB body cannot hold many more. */
const MAX_MATCHES = 2000;
/** Reports run this many at a time: a big batch must not take every database connection. */
const PARALLEL = 8;

interface Match {
  token: string;
  type: string;
}

export const githubReceiver: Receiver<GithubConfig> = {
  name: 'github',
  path: '/webhooks/github-secret-scanning',
  section: (config) => config.github,

  async authenticate(request, section, ctx) {
    const keyId = header(request.headers, 'github-public-key-identifier');
    const signature = header(request.headers, 'github-public-key-signature');
    if (!keyId || !signature) throw new Rejection(401, 'missing_signature');
    if (keyId.length > 256 || signature.length > 512 || !/^[A-Za-z0-9+/=]+$/.test(signature)) throw new Rejection(401, 'bad_signature');
    const keys = ctx.githubKeys(section);
    const key = await keys.get(keyId);
    // No key list loaded yet (GitHub refused or could not be reached): ours to fix, not a bad signature. GitHub retries a 503.
    if (!key && !keys.loaded) throw new RekeyError('REKEY_ERR_UNAVAILABLE', 'the GitHub secret scanning public keys could not be loaded yet');
    if (!key) throw new Rejection(401, 'unknown_key');
    let valid: boolean;
    try {
      valid = verify('sha256', request.body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
    } catch {
      valid = false; // a signature that is not DER at all
    }
    if (!valid) throw new Rejection(401, 'bad_signature');
  },

  async handle(request, _section, ctx) {
    const matches = parseMatches(parseJson(request.body));
    const deliveryId = `sha256:${sha256Hex(request.body)}`;
    // Anyone can push checksum-valid strings in our format for GitHub to send us: a real key must not
    // wait behind them. One query finds the tokens rekey issued (and rekey's own admin tokens are
    // known by their prefix); those are acted on first, then the rest are recorded as unknown.
    const fingerprints = matches.map((m) => ctx.reporter.fingerprint(SecretValue.of(m.token)));
    const issued = await ctx.reporter.issued(fingerprints);
    const urgent = matches.map((m, i) => m.token.startsWith(TOKEN_PREFIX) || issued.has(fingerprints[i]!));
    const indexes = matches.map((_, i) => i);
    const outcomes: string[] = [];
    const report = (i: number) =>
      ctx.reporter.reportToken('github', deliveryId, matches[i]!.token, request.receivedAt).then((record) => (outcomes[i] = record.outcome));
    await forEachBounded(indexes.filter((i) => urgent[i]), PARALLEL, report);
    await forEachBounded(indexes.filter((i) => !urgent[i]), PARALLEL, report);
    // In the order GitHub sent them.
    const labels = matches.map((m, i) => ({
      token_hash: sha256Hex(m.token),
      token_type: m.type,
      label: outcomes[i] === 'unknown' ? ('false_positive' as const) : ('true_positive' as const),
    }));
    return { status: 200, body: labels };
  },
};

function parseMatches(document: unknown): Match[] {
  if (!Array.isArray(document) || document.length === 0 || document.length > MAX_MATCHES) {
    throw new Rejection(400, 'malformed', 'expected a JSON array of matches');
  }
  return document.map((entry: unknown) => {
    const { token, type } = (entry ?? {}) as { token?: unknown; type?: unknown };
    if (!isToken(token) || typeof type !== 'string' || type.length > 256) {
      throw new Rejection(400, 'malformed', 'each match needs a token and a type');
    }
    return { token, type };
  });
}
