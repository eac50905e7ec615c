// A `rekey` command is audited as the OS account that ran it (`cli:<user>`, src/cli/with-runtime.ts),
// not as `cli` alone; an account os.userInfo() cannot name (a container's arbitrary uid: it throws)
// is named by its uid instead of failing the command.
import { userInfo } from 'node:os';
import { expect, it } from 'vitest';
import { cliActor } from '../../src/cli/with-runtime.js';

it('names the OS user, or the uid when the account has no name', () => {
  expect(cliActor()).toBe(`cli:${userInfo().username}`);
  expect(cliActor(() => ({ username: 'alice' }))).toBe('cli:alice');
  const nameless = () => {
    throw Object.assign(new Error('ENOENT: no such file or directory, uv_os_get_passwd'), { code: 'ENOENT' });
  };
  expect(cliActor(nameless)).toBe(`cli:uid=${process.getuid!()}`);
});
