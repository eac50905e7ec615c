// The layout of DESIGN.md, held by the machine: the rekey/boundaries ESLint rule refuses
// imports across the arrows, and scripts/check-cycles.mjs refuses import cycles. Both run
// in `npm test` over the whole tree; here each is shown to catch a deliberate violation.
import { resolve } from 'node:path';
import { Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import boundaries from '../../scripts/eslint/boundaries.mjs';
import { cycles, importGraph } from '../../scripts/check-cycles.mjs';

const root = resolve(import.meta.dirname, '..', '..');

function lint(file: string, code: string): string[] {
  const linter = new Linter({ configType: 'flat' });
  const messages = linter.verify(
    code,
    [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser }, plugins: { rekey: boundaries }, rules: { 'rekey/boundaries': 'error' } }],
    { filename: resolve(root, file) },
  );
  return messages.map((m) => m.message);
}

describe('import boundaries (rekey/boundaries)', () => {
  it('src/core imports no infrastructure and nothing outside src/core', () => {
    expect(lint('src/core/rotation.ts', "import { Queue } from 'bullmq';")).toEqual([expect.stringContaining('must not import bullmq')]);
    expect(lint('src/core/rotation.ts', "import { Pool } from 'pg';")).toHaveLength(1);
    expect(lint('src/core/rotation.ts', "import '@prisma/client';")).toHaveLength(1);
    expect(lint('src/core/rotation.ts', "import { x } from '../db/repository.js';")).toEqual([expect.stringContaining('src/core must import only src/core')]);
    expect(lint('src/core/rotation.ts', "import { x } from '../../providers/random/index.js';")).toHaveLength(1);
    expect(lint('src/core/rotation.ts', "import { probeKey } from './kit/probe.js';")).toEqual([expect.stringContaining('src/core/kit')]);
    expect(lint('src/core/rotation.ts', "import { RekeyError } from './errors.js';\nimport { z } from 'zod';")).toEqual([]);
  });

  it('a provider imports only src/core and its own folder', () => {
    expect(lint('providers/haproxy/haproxy.target.ts', "import { x } from '../nginx/nginx.map.js';")).toEqual([
      expect.stringContaining('a provider imports only src/core and its own folder'),
    ]);
    expect(lint('providers/haproxy/haproxy.target.ts', "import { Runtime } from '../../src/runtime.js';")).toHaveLength(1);
    expect(lint('providers/haproxy/haproxy.target.ts', "export * from '../../src/db/client.js';")).toHaveLength(1);
    expect(lint('providers/haproxy/haproxy.target.ts', "import { x } from './runtime-api.js';\nimport { y } from '../../src/core/kit/probe.js';")).toEqual([]);
    expect(lint('providers/haproxy/test/haproxy.test.ts', "import { x } from '../../nginx/index.js';")).toHaveLength(1);
    expect(lint('providers/haproxy/test/haproxy.test.ts', "import { x } from '../../../test/support/poll.js';")).toEqual([]);
  });

  it('nothing under src/ but the registry (and the demo) imports a provider', () => {
    expect(lint('src/leaks/aws-health.ts', "import { x } from '../../providers/aws-iam-access-key/index.js';")).toEqual([
      expect.stringContaining('only src/registry.ts imports providers'),
    ]);
    expect(lint('src/events/pubsub-push.ts', "const m = await import('../../providers/gcp-secret-manager/index.js');")).toHaveLength(1);
    expect(lint('src/registry.ts', "import local from '../providers/local/index.js';")).toEqual([]);
  });

  it('the client library (rekey/client) imports only its own folder and node: built-ins', () => {
    expect(lint('src/client/index.ts', "import { PrismaClient } from '@prisma/client';")).toEqual([expect.stringContaining('imports only node: built-ins')]);
    expect(lint('src/client/index.ts', "import { jwtVerify } from 'jose';")).toHaveLength(1);
    expect(lint('src/client/index.ts', "import { SecretValue } from '../core/secret-value.js';")).toEqual([expect.stringContaining('imports only src/client')]);
    expect(lint('src/client/index.ts', "import { follow } from './events.js';\nimport { setTimeout } from 'node:timers/promises';")).toEqual([]);
  });
});

describe('import cycles (scripts/check-cycles.mjs)', () => {
  it('finds a cycle, ignoring type-only imports', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ]);
    expect(cycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts']]);
    expect(cycles(new Map([['a.ts', ['b.ts']], ['b.ts', []]]))).toEqual([]);
  });

  it('the shipped modules have none', () => {
    const graph = importGraph(root);
    expect(graph.size).toBeGreaterThan(100);
    expect(cycles(graph)).toEqual([]);
  });
});
