/** `rekey agent` (src/cli/commands/agent.ts): options to a running agent, its log as JSON lines of codes on stderr. */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { AgentFlags } from '../cli/commands/agent.js';
import type { CliContext } from '../cli/context.js';
import { ExitCode } from '../cli/context.js';
import { startAgent } from './agent.js';
import { loadTemplate } from './templates.js';

const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export async function runAgent(ctx: CliContext, flags: AgentFlags): Promise<void> {
  const file = flags.clientKeyFile ?? flags.tokenFile;
  if (!file || (flags.clientKeyFile && flags.tokenFile)) {
    process.stderr.write('rekey agent: give one of --client-key-file and --token-file\n');
    throw new ExitCode(2);
  }
  const agent = await startAgent({
    server: flags.server,
    credential: async () => (await readFile(file, 'utf8')).trim(),
    credentialType: flags.clientKeyFile ? ACCESS_TOKEN_TYPE : undefined,
    requestToken: await requestToken(flags.requestTokenFile),
    port: flags.port,
    secrets: flags.secret,
    audiences: flags.audience,
    templates: await Promise.all(flags.template.map(loadTemplate)),
    notify: flags.pidFile ? { pid: pidFrom(flags.pidFile), signal: flags.signal as NodeJS.Signals } : undefined,
    logger: (event) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`),
  });
  ctx.out(`rekey agent: ${agent.url} (header X-Rekey-Agent-Token)`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await agent.stop();
}

/** The token in `path`, or a new random one written there 0600. */
async function requestToken(path: string): Promise<string> {
  const existing = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (existing) return existing;
  const token = randomBytes(32).toString('base64url');
  await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return token;
}

function pidFrom(path: string): () => Promise<number | undefined> {
  return async () => {
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  };
}
