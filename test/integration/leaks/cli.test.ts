// `rekey revoke --token-stdin` as a real child process against this file's rekey: the
// leaked key is blocked at HAProxy, an unknown line is recorded by fingerprint, and
// neither token appears in the output.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/main.js';
import { cliActor } from '../../../src/cli/with-runtime.js';
import { revokeTokensCommand } from '../../../src/leaks/cli.js';
import { MAX_TOKEN_LENGTH } from '../../../src/leaks/report.js';
import { childArgs } from '../../support/children.js';
import { send } from '../../support/gateways/index.js';
import { gatewaySecretYaml, providersYaml, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

let e: LeakEnv;
const secret = `cli-${randomUUID().slice(0, 8)}`;
const other = `cli-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  e = await startLeakEnv('cli');
  await e.h.apply(`${providersYaml(e)}\nsecrets:${gatewaySecretYaml(secret)}${gatewaySecretYaml(other)}\n`);
  expect((await e.h.rotate(secret)).status).toBe('succeeded');
  expect((await e.h.rotate(other)).status).toBe('succeeded');
});
afterAll(() => e?.stop());

function rekey(args: string[], stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...childArgs('src/cli/main.ts'), ...args], { env: e.h.childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('rekey revoke --token-stdin', () => {
  it('takes the leak path for each line and prints outcomes without the tokens', async () => {
    const leaked = (await storedValue(e.h, secret)).reveal();
    const stranger = `rk_test_${randomUUID().replaceAll('-', '')}`;
    expect((await send(e.gateway.url, e.gateway.header, leaked)).status).toBe(200);
    const result = await rekey(['revoke', '--token-stdin'], `${leaked}\r\n\n${stranger}\n`);
    expect(result.code).toBe(0);
    // stderr holds core's log lines ("leak report", by fingerprint); neither carries a token.
    for (const output of [result.stdout, result.stderr]) {
      expect(output).not.toContain(leaked);
      expect(output).not.toContain(stranger);
    }
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^line 1 \\(fp_.{9}…\\): ${secret} v1 rotating - `));
    expect(lines[1]).toMatch(/^line 3 \(fp_.{9}…\): unknown - not a key rekey issued/);

    await until(async () => (await send(e.gateway.url, e.gateway.header, leaked)).status === 401);
    expect((await send(e.gateway.url, e.gateway.header, (await storedValue(e.h, secret)).reveal())).status).toBe(200);
    const reports = await e.h.runtime.db.leakReport.findMany({ where: { source: 'cli' }, select: { outcome: true, deliveryId: true } });
    expect(reports.map((r) => r.outcome).sort()).toEqual(['rotating', 'unknown']);
    expect(new Set(reports.map((r) => r.deliveryId)).size).toBe(1);
    // Audited as who ran it (cli:<OS user>, as every rekey command), not as the report: the delivery id is in the event's data.
    const reported = await e.h.runtime.db.auditEvent.findMany({ where: { action: 'leak.reported', data: { path: ['deliveryId'], equals: reports[0]!.deliveryId } } });
    expect(reported.map((a) => a.actor)).toEqual([cliActor(), cliActor()]);
    const since = Math.min(...reported.map((a) => Number(a.seq)));
    const after = await e.h.runtime.db.auditEvent.findMany({ where: { seq: { gte: since } }, select: { actor: true, action: true } });
    expect(after.filter((a) => a.actor.startsWith('leak/cli/'))).toEqual([]);
  });

  it('reports every line when one fails: the ones before and after it are acted on and printed, and it exits 1', async () => {
    const leaked = (await storedValue(e.h, other)).reveal();
    const stranger = `rk_test_${randomUUID().replaceAll('-', '')}`;
    const notAToken = 'x'.repeat(MAX_TOKEN_LENGTH + 1);
    const result = await rekey(['revoke', '--token-stdin'], `${stranger}\n${notAToken}\n${leaked}\n`);
    expect(result.code).toBe(1);
    for (const output of [result.stdout, result.stderr]) {
      expect(output).not.toContain(leaked);
      expect(output).not.toContain(stranger);
    }
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^line 1 \(fp_.{9}…\): unknown - /);
    expect(lines[1]).toMatch(/^line 2: failed \(REKEY_ERR_INVALID\) - /);
    expect(lines[2]).toMatch(new RegExp(`^line 3 \\(fp_.{9}…\\): ${other} v1 rotating - `));
    await until(async () => (await send(e.gateway.url, e.gateway.header, leaked)).status === 401);
  });

  it('is a usage error with NAME or --version, and refuses a terminal', async () => {
    expect(await runCli(['node', 'rekey', 'revoke', secret, '--token-stdin'])).toBe(2);
    expect(await runCli(['node', 'rekey', 'revoke', '--version', '1', '--token-stdin'])).toBe(2);
    expect(await runCli(['node', 'rekey', 'revoke', secret])).toBe(2);
    const terminal = Object.assign(new PassThrough(), { isTTY: true });
    await expect(revokeTokensCommand(e.h.runtime, terminal, () => undefined, false)).rejects.toThrow(/not a terminal/);
  });
});
