/**
 * `rekey agent --pid-file`: the process to signal when a rendered file changed is the one whose
 * pid the file holds, and only if that process is the one that wrote it. A pid file outlives its
 * process (a crash, a kill -9), and the kernel hands the pid to the next process that starts: as
 * root the agent's SIGHUP (whose default action ends a process) would reach that one instead.
 * And the file's writer must be able to signal the process itself: as root, the agent would
 * otherwise send its SIGHUP wherever a file another user planted points (pid 1, another user's
 * process), so a process whose real uid is not the file's owner is not signalled, nor one named by
 * a file others may write, a link, a FIFO or a hard link. These tests run as root (chown).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, link, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAgent, type AgentLogEvent, type PidRefusal } from '../../src/agent/agent.js';
import { pidFrom } from '../../src/agent/run.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { agentOptions } from '../support/agent.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let dir: string;
let child: ChildProcess | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-pid-'));
});
afterEach(async () => {
  if (child?.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  await rm(dir, { recursive: true, force: true });
});

const NOBODY = 65534;
const root = process.getuid?.() === 0;

/** A process that prints `HUP` on SIGHUP (as `uid`, when given), once it listens for it; its pid. */
const started = async (uid?: number) => {
  child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => process.stdout.write('HUP\\n')); process.stdout.write('ready\\n'); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'ignore'], uid, gid: uid });
  await new Promise((resolve) => child!.stdout!.once('data', resolve));
  return child.pid!;
};

/** Writes `pid` to a pid file, 0644 (a pid file as an app writes one), owned by `uid` when given; its path. */
const pidFile = async (pid: number | string, uid?: number) => {
  const path = join(dir, 'app.pid');
  await writeFile(path, `${pid}\n`, { mode: 0o644 });
  if (uid !== undefined) await chown(path, uid, uid);
  return path;
};

/** What pidFrom() names for `path`, and the refusals it told. */
const named = async (path: string) => {
  const refusals: PidRefusal[] = [];
  const pid = await pidFrom(path, (reason) => refusals.push(reason))();
  return { pid, refusals };
};

it('names the process that wrote the pid file', async () => {
  const pid = await started();
  expect(await named(await pidFile(pid))).toEqual({ pid, refusals: [] });
});

it.runIf(root)('names a process of the user who owns the pid file, when that is not the agent\'s user', async () => {
  const pid = await started(NOBODY);
  expect(await named(await pidFile(pid, NOBODY))).toEqual({ pid, refusals: [] });
});

it.runIf(root)('names no process of another user than the pid file\'s owner (a file nobody planted, naming a process of root\'s)', async () => {
  const pid = await started();
  expect(await named(await pidFile(pid, NOBODY))).toEqual({ pid: undefined, refusals: ['other_owner'] });
  expect(await named(await pidFile(1, NOBODY))).toEqual({ pid: undefined, refusals: ['other_owner'] });
});

it('names no process when other users may write the pid file', async () => {
  const pid = await started();
  const path = await pidFile(pid);
  for (const mode of [0o664, 0o646, 0o666]) {
    await chmod(path, mode);
    expect(await named(path), `mode ${mode.toString(8)}`).toEqual({ pid: undefined, refusals: ['writable_by_others'] });
  }
});

it('names no process through a link, a hard link or a FIFO', async () => {
  const pid = await started();
  const target = join(dir, 'other.pid');
  await writeFile(target, `${pid}\n`, { mode: 0o644 });
  await symlink(target, join(dir, 'symbolic.pid'));
  expect(await named(join(dir, 'symbolic.pid'))).toEqual({ pid: undefined, refusals: ['not_regular_file'] });
  await link(target, join(dir, 'hard.pid'));
  expect(await named(join(dir, 'hard.pid'))).toEqual({ pid: undefined, refusals: ['hard_linked'] });
  expect(spawnSync('mkfifo', ['-m', '644', join(dir, 'fifo.pid')]).status).toBe(0);
  expect(await named(join(dir, 'fifo.pid'))).toEqual({ pid: undefined, refusals: ['not_regular_file'] });
});

it('names no process when the pid in the file belongs to a process started after the file was written (the pid reused)', async () => {
  const pid = await started();
  const path = await pidFile(pid);
  // Written an hour ago by a process that has since exited; its pid now belongs to the one just started.
  const hourAgo = new Date(Date.now() - 3_600_000);
  await utimes(path, hourAgo, hourAgo);
  expect(await named(path)).toEqual({ pid: undefined, refusals: ['started_after_written'] });
});

it('names no process when the file holds no pid, or a pid no process has', async () => {
  expect(await named(await pidFile('not a pid'))).toEqual({ pid: undefined, refusals: [] });
  expect(await named(join(dir, 'missing.pid'))).toEqual({ pid: undefined, refusals: [] });
  const gone = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => gone.once('exit', resolve));
  expect(await named(await pidFile(gone.pid!))).toEqual({ pid: undefined, refusals: ['no_process'] });
});

describe('an agent', () => {
  let server: StandIn;
  beforeAll(async () => {
    server = await standIn((request, response) => {
      if (request.url === '/v1/events') return void response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: 1, value: 'v1', expiresAt: new Date(Date.now() + 300_000).toISOString() }));
    });
  });
  afterAll(() => server.stop());

  /** Starts an agent rendering one file, --pid-file `path`; resolves with its log once it told or refused. */
  const signalOrRefusal = async (path: string) => {
    await writeFile(join(dir, 'app.env.tmpl'), 'K={{ secret "k" }}\n');
    const logs: AgentLogEvent[] = [];
    let told: () => void = () => {};
    const outcome = new Promise<void>((resolve) => (told = resolve));
    const agent = await startAgent(agentOptions(server.url, {
      templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
      notify: {
        pid: pidFrom(path, (reason) => {
          logs.push({ code: 'agent_pid_refused', reason });
          told();
        }),
        signal: 'SIGHUP',
        quietMs: 50,
      },
      logger: (event) => {
        logs.push(event);
        if (event.code === 'agent_signalled' || event.code === 'agent_signal_failed') told();
      },
    }));
    // The file rendered at start is a change: the process is told once it settled, or the pid file refused.
    await outcome;
    await agent.stop();
    return logs;
  };

  it('signals the process of a pid file its owner wrote', async () => {
    const pid = await started();
    const hup = new Promise((resolve) => child!.stdout!.once('data', resolve));
    const logs = await signalOrRefusal(await pidFile(pid));
    expect(logs).toContainEqual({ code: 'agent_signalled', pid });
    expect(String(await hup)).toBe('HUP\n');
  });

  it.runIf(root)('does not signal a process of root\'s that a pid file of nobody\'s names, and logs why', async () => {
    const pid = await started();
    let hups = '';
    child!.stdout!.on('data', (data) => (hups += String(data)));
    const logs = await signalOrRefusal(await pidFile(pid, NOBODY));
    expect(logs).toContainEqual({ code: 'agent_pid_refused', reason: 'other_owner' });
    expect(logs.map((e) => e.code)).not.toContain('agent_signalled');
    expect(JSON.stringify(logs)).not.toContain(String(pid));
    expect(child!.exitCode).toBeNull();
    expect(hups).toBe('');
  });
});
