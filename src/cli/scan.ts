/**
 * `rekey scan`: rekey keys (checksum-exact, so no false positive on a random string) in files,
 * directories or the git index (`--staged`, for a pre-commit hook), printed as text or SARIF
 * 2.1.0; with `--check`, which of them are live (asked of rekey's admin API, read scope), with
 * `--report`, the leak path for the live ones (revoke scope). Nothing printed carries a character
 * of a key's random part: a finding shows the key's prefix (`rk_live_`, not secret) and a digest
 * that tells keys apart (`sha256:` and the first 12 hex digits of its SHA-256; 30 random base62
 * characters, about 178 bits, cannot be guessed back from it), and with `--check`/`--report` the
 * secret and version it is (for an admin API token, its name; `--report` revokes it). Only
 * `--check`/`--report` send the keys themselves, to the API that fingerprints them.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { findKeys, keyPrefix } from '../core/key-format.js';
import { RekeyError } from '../core/errors.js';
import { ExitCode, type CliContext } from './context.js';

export interface ScanOptions {
  staged?: boolean;
  format: 'text' | 'sarif';
  check?: boolean;
  report?: boolean;
}

interface Finding {
  file: string;
  line: number;
  column: number;
  token: string;
  /** From the admin API (`--check`, `--report`). */
  known?: { secret: string | null; version: number | null; state: string | null; live: boolean; adminToken?: string | null; outcome?: string | null };
}

/** What a source holds: its path as printed and its text. */
type Source = { file: string; text: () => Promise<string> };

/** Directories never worth scanning. */
const SKIPPED = new Set(['.git', 'node_modules']);

async function walk(path: string, sources: Source[]): Promise<void> {
  const info = await stat(path);
  if (!info.isDirectory()) {
    sources.push({ file: path, text: () => readFile(path, 'utf8') });
    return;
  }
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.isDirectory() && SKIPPED.has(entry.name)) continue;
    if (entry.isDirectory() || entry.isFile()) await walk(join(path, entry.name), sources);
  }
}

/** The files added, copied, modified or renamed in the git index, with the index's content (what the commit will hold). */
function stagedSources(): Source[] {
  const git = (args: string[]) => execFileSync('git', args, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
  let names: string;
  try {
    names = git(['diff', '--cached', '--name-only', '-z', '--diff-filter=ACMR']);
  } catch {
    throw new RekeyError('REKEY_ERR_INVALID', '--staged: not in a git repository (or git is not installed)');
  }
  return names
    .split('\0')
    .filter(Boolean)
    .map((file) => ({ file, text: () => Promise.resolve(git(['show', `:${file}`])) }));
}

export async function scan(ctx: CliContext, paths: string[], options: ScanOptions, usage: (message: string) => never): Promise<void> {
  if (options.staged && paths.length) usage('error: --staged scans the git index: give no paths with it');
  if (!options.staged && !paths.length) usage("error: missing required argument 'paths' (or --staged)");
  const sources: Source[] = [];
  if (options.staged) sources.push(...stagedSources());
  // Every path is looked at before anything is printed: a missing one is a usage error, not a half scan.
  for (const path of paths) await walk(path, sources).catch((error: NodeJS.ErrnoException) => usage(`error: cannot read ${path} (${error.code ?? 'error'})`));

  const findings: Finding[] = [];
  for (const source of sources) {
    const text = await source.text().catch((error: NodeJS.ErrnoException) => usage(`error: cannot read ${source.file} (${error.code ?? 'error'})`));
    for (const { line, column, token } of findKeys(text)) findings.push({ file: source.file, line, column, token });
  }
  if ((options.check || options.report) && findings.length) await askApi(findings, options.report ? 'report' : 'check');

  if (options.format === 'sarif') ctx.out(JSON.stringify(sarif(findings), null, 2));
  else for (const f of findings) ctx.out(`${f.file}:${f.line}: ${named(f)}${f.known ? `  ${describe(f.known)}` : ''}`);
  if (findings.length) throw new ExitCode(1);
}

/** A finding's key as printed: its prefix and its digest (`rk_live_... sha256:0123456789ab`), nothing of its random part. */
function named(f: Finding): string {
  return `${keyPrefix(f.token)}... sha256:${createHash('sha256').update(f.token).digest('hex').slice(0, 12)}`;
}

function describe(known: NonNullable<Finding['known']>): string {
  // One of rekey's own admin API tokens, by its name (`admin API token ci-deploy active (live): reported, revoked`).
  const what = known.adminToken
    ? `admin API token ${known.adminToken} ${known.state}${known.live ? ' (live)' : ''}`
    : known.secret
      ? `${known.secret} v${known.version} ${known.state}${known.live ? ' (live)' : ''}`
      : undefined;
  if (!what) return 'not a key rekey manages';
  return known.outcome ? `${what}: reported, ${known.outcome}` : what;
}

/** REKEY_API_URL: https, or http to a loopback address only. */
function apiUrl(): URL {
  const text = process.env.REKEY_API_URL;
  const token = process.env.REKEY_API_TOKEN;
  if (!text || !token) throw new RekeyError('REKEY_ERR_INVALID', '--check and --report ask rekey\'s admin API: set REKEY_API_URL (https://...) and REKEY_API_TOKEN (read scope for --check; revoke for --report)');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RekeyError('REKEY_ERR_INVALID', 'REKEY_API_URL is not a URL');
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw new RekeyError('REKEY_ERR_INVALID', 'REKEY_API_URL must be https (http only to a loopback address): the keys found are sent to it');
  return url;
}

async function askApi(findings: Finding[], operation: 'check' | 'report'): Promise<void> {
  const base = apiUrl();
  // The API takes up to 100 keys per request.
  for (let start = 0; start < findings.length; start += 100) {
    const batch = findings.slice(start, start + 100);
    const response = await fetch(new URL(`api/v1/keys/${operation}`, base.href.endsWith('/') ? base : `${base.href}/`), {
      method: 'POST',
      headers: { authorization: `Bearer ${process.env.REKEY_API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ keys: batch.map((f) => f.token) }),
    }).catch((error: Error) => {
      throw new RekeyError('REKEY_ERR_UNAVAILABLE', `cannot reach the admin API at ${base.origin} (${(error.cause as NodeJS.ErrnoException | undefined)?.code ?? error.name})`);
    });
    if (!response.ok) {
      const problem = (await response.json().catch(() => ({}))) as { code?: string; detail?: string };
      throw new RekeyError('REKEY_ERR_UNAVAILABLE', `the admin API answered ${response.status} ${problem.code ?? ''}${problem.detail ? `: ${problem.detail}` : ''}`.trim());
    }
    const { items } = (await response.json()) as { items: Array<NonNullable<Finding['known']> & { index: number }> };
    for (const { index, secret, version, state, live, adminToken, outcome } of items) batch[index]!.known = { secret, version, state, live, adminToken, ...(outcome === undefined ? {} : { outcome }) };
  }
}

/** A SARIF 2.1.0 log: one rule, one result per key, located by file, line and column; named as in the text output, the key itself never in it. */
function sarif(findings: readonly Finding[]): object {
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'rekey',
            informationUri: 'https://rekey.dev',
            rules: [
              {
                id: 'rekey/key',
                name: 'RekeyKey',
                shortDescription: { text: 'A rekey API key (its checksum verified)' },
                fullDescription: { text: 'A key in rekey\'s format whose CRC32 checksum matches: a real key, not a random string. Remove it from the file and revoke it (`rekey scan --report`, or `rekey revoke`).' },
                defaultConfiguration: { level: 'error' },
              },
            ],
          },
        },
        results: findings.map((f) => ({
          ruleId: 'rekey/key',
          level: 'error',
          message: { text: `A rekey key (${named(f)})${f.known ? `: ${describe(f.known)}` : ''}` },
          locations: [{ physicalLocation: { artifactLocation: { uri: relative('.', f.file).split('\\').join('/') }, region: { startLine: f.line, startColumn: f.column } } }],
        })),
      },
    ],
  };
}
