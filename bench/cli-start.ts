// How fast the `rekey` command starts, and how much memory it takes, per command: wall time
// (spawn to exit, measured here) and peak RSS (the child's own getrusage maxRSS, reported at
// exit by a preloaded one-liner), each beside the bare floor `node -e ''` measured the same
// way in the same rounds. Rounds interleave the commands, so machine load hits all alike.
// Runs the compiled CLI through the bin (`npm run build` first); `status` runs against its own
// database and queue prefix with a two-secret config applied.
//
//   npm run bench -- cli-start [--rounds 7] [--root DIR]   (DIR: another built checkout, e.g. an older commit)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnvironment, percentile } from './support/environment.js';
import { option, printColumns } from './support/cli.js';

interface Figures {
  wallMs: { p50: number; max: number };
  rssMb: { p50: number; max: number };
}

export async function main(args: string[] = process.argv.slice(2)): Promise<Record<string, Figures>> {
  const rounds = Number(option(args, '--rounds') ?? 7);
  const root = resolve(option(args, '--root') ?? fileURLToPath(new URL('..', import.meta.url)));
  const bin = join(root, 'bin', 'rekey.js');
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) throw new Error(`no build in ${root}/dist: run \`npm run build\` there first`);

  const dir = mkdtempSync(join(tmpdir(), 'rekey-bench-cli-'));
  const reporter = join(dir, 'report-rss.cjs');
  writeFileSync(reporter, "process.on('exit', () => require('node:fs').writeFileSync(process.env.RSS_FILE, String(process.resourceUsage().maxRSS)));\n");
  const config = join(dir, 'rekey.yaml');
  writeFileSync(config, 'providers:\n  vault: { type: local }\nsecrets:\n  a: { store: { provider: vault }, issuer: { type: random } }\n  b: { store: { provider: vault }, issuer: { type: random } }\n');
  const envFile = join(dir, 'app.env');
  writeFileSync(envFile, 'API_KEY=not-a-rekey-key\n');

  const bench = await benchEnvironment('cli_start');
  const env = bench.env;
  const run = async (argv: string[]): Promise<{ ms: number; rssKb: number; code: number | null }> => {
    const rssFile = join(dir, 'rss');
    rmSync(rssFile, { force: true });
    const started = performance.now();
    const child = spawn(process.execPath, ['--require', reporter, ...argv], { cwd: root, env: { ...env, RSS_FILE: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.once('close', done));
    const ms = performance.now() - started;
    if (code !== 0 && !(argv.includes('scan') && code === 1)) throw new Error(`${argv.join(' ')} exited ${code}: ${stderr}`);
    return { ms, rssKb: Number(readFileSync(rssFile, 'utf8')), code };
  };

  const commands: Record<string, string[]> = {
    "floor: node -e ''": ['-e', ''],
    keygen: [bin, 'keygen'],
    'scan FILE': [bin, 'scan', envFile],
    '--help': [bin, '--help'],
    'config schema': [bin, 'config', 'schema'],
    'status (2 secrets)': [bin, 'status'],
  };
  const samples: Record<string, Array<{ ms: number; rssKb: number }>> = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
  try {
    await run([bin, 'apply', '-f', config, '--no-rotation-metadata']);
    for (const argv of Object.values(commands)) await run(argv); // warm the file cache; not counted
    for (let round = 0; round < rounds; round++) {
      for (const [name, argv] of Object.entries(commands)) samples[name]!.push(await run(argv));
    }
  } finally {
    await bench.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }

  const figures: Record<string, Figures> = {};
  const rows = [['command', 'wall p50 ms', 'wall max ms', 'RSS p50 MB', 'RSS max MB']];
  for (const [name, list] of Object.entries(samples)) {
    const ms = list.map((s) => s.ms).sort((a, b) => a - b);
    const mb = list.map((s) => s.rssKb / 1024).sort((a, b) => a - b);
    figures[name] = { wallMs: { p50: Math.round(percentile(ms, 50)), max: Math.round(ms.at(-1)!) }, rssMb: { p50: Math.round(percentile(mb, 50)), max: Math.round(mb.at(-1)!) } };
    rows.push([name, String(figures[name].wallMs.p50), String(figures[name].wallMs.max), String(figures[name].rssMb.p50), String(figures[name].rssMb.max)]);
  }
  console.log(`rekey start-up, ${rounds} rounds, ${root}`);
  printColumns(rows);
  console.log(JSON.stringify({ rounds, root, figures }));
  return figures;
}
