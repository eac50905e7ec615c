/**
 * `rekey revoke --token-stdin`: leaked tokens read from stdin, one per line, each
 * fingerprinted and reported like a receiver reports it (source `cli`, one delivery id
 * per invocation). The output names each line by number and fingerprint, never by token.
 */
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { describeError, RekeyError } from '../core/errors.js';
import type { LeakOutcome } from '../core/model.js';
import type { Runtime } from '../runtime.js';
import { LeakReporter, MAX_TOKEN_LENGTH } from './report.js';

export interface TokenOutcome {
  /** 1-based line of stdin. */
  line: number;
  /** null when the line failed before it was fingerprinted (longer than a token). */
  fingerprint: string | null;
  /** `failed`: this line was not reported (`error` says why); the other lines still were. */
  outcome: LeakOutcome | 'failed';
  secret: string | null;
  version: number | null;
  duplicate: boolean;
  /** When `failed`: the error's code (`unexpected` for an error rekey did not raise on purpose; stderr has it). */
  error?: string;
}

/**
 * Reports every non-empty line of `input` as a leaked token. A line that fails is recorded as
 * `failed` with its error's code and the next lines are still reported: one bad line never
 * leaves the leaked tokens after it live, nor hides what was done for those before it.
 */
export async function revokeTokens(runtime: Runtime, input: Readable): Promise<TokenOutcome[]> {
  runtime.requireKeys();
  const reporter = new LeakReporter(runtime);
  const deliveryId = `stdin:${randomUUID()}`;
  const outcomes: TokenOutcome[] = [];
  let line = 0;
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    line += 1;
    const token = text.trim();
    if (!token) continue;
    try {
      if (token.length > MAX_TOKEN_LENGTH) throw new RekeyError('REKEY_ERR_INVALID', `longer than ${MAX_TOKEN_LENGTH} characters; is this a token?`);
      const record = await reporter.reportToken('cli', deliveryId, token, new Date());
      const version = record.versionId ? await runtime.engine.deps.repo.getVersion(record.versionId) : null;
      outcomes.push({ line, fingerprint: record.fingerprint, outcome: record.outcome, secret: record.secret, version: version?.number ?? null, duplicate: record.duplicate });
    } catch (error) {
      runtime.log.error({ line, error: describeError(error) }, 'leak report failed');
      outcomes.push({ line, fingerprint: null, outcome: 'failed', secret: null, version: null, duplicate: false, error: error instanceof RekeyError ? error.code : 'unexpected' });
    }
  }
  return outcomes;
}

const EXPLAIN: Record<TokenOutcome['outcome'], string> = {
  failed: 'not reported: run it again for this line (stderr says why)',
  unknown: 'not a key rekey issued; recorded by fingerprint',
  'already-revoked': 'already revoked',
  revoking: 'being retired everywhere and revoked',
  rotating: 'current: an emergency rotation replaces it, then it is revoked',
  blocking: 'current: blocked at every target now, then replaced',
};

/** One human line per token: `line 2 (fp_AbC…): rotating — payments-api-key v3 current: ...`. */
export function formatOutcome(o: TokenOutcome): string {
  if (!o.fingerprint) return `line ${o.line}: ${o.outcome}${o.error ? ` (${o.error})` : ''} - ${EXPLAIN[o.outcome]}`;
  const which = o.secret ? ` ${o.secret} v${o.version ?? '?'}` : '';
  return `line ${o.line} (${o.fingerprint.slice(0, 12)}…):${which} ${o.outcome}${o.duplicate ? ' (repeated line)' : ''} - ${EXPLAIN[o.outcome]}`;
}

/** The command's body: refuses a terminal (a typed token would be echoed on screen). Resolves to whether every line was reported. */
export async function revokeTokensCommand(runtime: Runtime, input: Readable & { isTTY?: boolean }, out: (text: string) => void, json: boolean): Promise<boolean> {
  if (input.isTTY) throw new RekeyError('REKEY_ERR_CONFIG', '--token-stdin reads a pipe or a file, not a terminal: rekey revoke --token-stdin < leaked.txt');
  await runtime.connect();
  const outcomes = await revokeTokens(runtime, input);
  if (json) out(JSON.stringify(outcomes));
  else if (!outcomes.length) out('No tokens on stdin.');
  else for (const o of outcomes) out(formatOutcome(o));
  return outcomes.every((o) => o.outcome !== 'failed');
}
