/**
 * The anchor job checks the log against the anchor it took last: events removed from the end
 * of a chain (which the chain alone cannot show) are caught by its next run, not only when an
 * operator runs `rekey audit verify --anchor` with an anchor kept somewhere.
 * No workers here: the job is called by hand, so no scheduled run races the tampering.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LastAnchor, recordAnchor } from '../../src/audit-anchor.js';
import { createLogger } from '../../src/log.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runSql } from '../support/isolation.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'audit-anchor-chain', workers: false });
});
afterAll(() => h?.stop());

it('a run of the anchor job catches events removed since its last anchor, and names that anchor', async () => {
  const lines: string[] = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const deps = { db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier, last: new LastAnchor(h.runtime.redis, h.env.prefix) };
  for (let i = 0; i < 3; i++) await h.runtime.audit.append(h.runtime.db, { actor: 'test', action: 'test.event', secret: 'tampered', data: { i } });
  const first = await recordAnchor(deps);
  const again = await recordAnchor(deps);
  const failures = () => lines.map((l) => JSON.parse(l) as { msg: string; seq?: string; problem?: string }).filter((l) => l.msg === 'audit log does not verify');
  expect(failures()).toEqual([]); // nothing changed: the last anchor still holds
  expect(again.seq).toBe(first.seq);

  const [tail] = await h.runtime.db.auditEvent.findMany({ where: { chain: 'tampered' }, orderBy: { seq: 'desc' }, take: 1 });
  await runSql(h.env.databaseUrl, [
    'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
    `DELETE FROM audit_events WHERE seq = ${tail!.seq}`,
    'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
  ]);
  await recordAnchor(deps);
  expect(failures()).toEqual([expect.objectContaining({ seq: again.seq, problem: expect.stringMatching(/^is the anchor, and the chains up to it are not what they were/) as unknown })]);
  // The alarm is raised once: the run after it checks against the anchor of the log as it is now.
  await recordAnchor(deps);
  expect(failures()).toHaveLength(1);
});
