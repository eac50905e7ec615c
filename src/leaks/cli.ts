/**
 * `rekey revoke --token-stdin`: leaked tokens read from stdin, one per line, each
 * fingerprinted and reported like a receiver reports it (source `cli`, one delivery id
 * per invocation). The output names each line by number and fingerprint, never by token.
 */
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { RekeyError } from '../core/errors.js';
import type { LeakOutcome } from '../core/model.js';
import type { Runtime } from '../runtime.js';
import { LeakReporter, MAX_TOKEN_LENGTH } from './report.js';

export interface TokenOutcome {
  /** 1-based line of stdin. */
  line: number;
  fingerprint: string;
  outcome: LeakOutcome;
  secret: string | null;
  version: number | null;
  duplicate: boolean;
}

/** Reports every non-empty line of `input` as a leaked token. */
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
    if (token.length > MAX_TOKEN_LENGTH) throw new RekeyError('REKEY_ERR_INVALID', `line ${line} is longer than ${MAX_TOKEN_LENGTH} characters; is this a token?`);
    const record = await reporter.reportToken('cli', deliveryId, token, new Date());
    const version = record.versionId ? await runtime.engine.deps.repo.getVersion(record.versionId) : null;
    outcomes.push({ line, fingerprint: record.fingerprint, outcome: record.outcome, secret: record.secret, version: version?.number ?? null, duplicate: record.duplicate });
  }
  return outcomes;
}

const EXPLAIN: Record<LeakOutcome, string> = {
  unknown: 'not a key rekey issued; recorded by fingerprint',
  'already-revoked': 'already revoked',
  revoking: 'being retired everywhere and revoked',
  rotating: 'current: an emergency rotation replaces it, then it is revoked',
  blocking: 'current: blocked at every target now, then replaced',
};

/** One human line per token: `line 2 (fp_AbC…): rotating — payments-api-key v3 current: ...`. */
export function formatOutcome(o: TokenOutcome): string {
  const which = o.secret ? ` ${o.secret} v${o.version ?? '?'}` : '';
  return `line ${o.line} (${o.fingerprint.slice(0, 12)}…):${which} ${o.outcome}${o.duplicate ? ' (repeated line)' : ''} - ${EXPLAIN[o.outcome]}`;
}

/** The command's body: refuses a terminal (a typed token would be echoed on screen). */
export async function revokeTokensCommand(runtime: Runtime, input: Readable & { isTTY?: boolean }, out: (text: string) => void, json: boolean): Promise<void> {
  if (input.isTTY) throw new RekeyError('REKEY_ERR_CONFIG', '--token-stdin reads a pipe or a file, not a terminal: rekey revoke --token-stdin < leaked.txt');
  await runtime.connect();
  const outcomes = await revokeTokens(runtime, input);
  if (json) out(JSON.stringify(outcomes));
  else if (!outcomes.length) out('No tokens on stdin.');
  else for (const o of outcomes) out(formatOutcome(o));
}
