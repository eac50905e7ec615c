/**
 * No test config may carry a schedule that comes due during any run: a pattern that fires every
 * day (or more often) fires during some CI run whatever the time of day it starts, and the
 * rotation it makes joins whatever that test counts (delivery-values once failed at 20:00 on
 * its hourly pattern). Every cron-like string literal of every test file that runs workers (not
 * the unit tests) is read as a pattern; one that fires within every 24 hours fails this test
 * unless its file opts in with a comment `wall-clock schedules: <why a firing cannot change the
 * outcome>` (a test about schedules themselves, a harness without workers). Housekeeping jobs
 * given whole hours or days (`--outbox-interval 1d`, meant as "not during this test") run at the
 * top of the hour or at midnight, and are refused the same way. A test that needs a
 * schedule that shows uses laterSchedule() (test/support/schedules.ts), first due hours after
 * the test starts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CronExpressionParser } from 'cron-parser';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { laterSchedule } from '../support/schedules.js';

const HOUR = 3_600_000;
/** A pattern that fires within this long of any instant is refused. */
const WITHIN = 24 * HOUR;

/** One field of a pattern: digits, `* / , - ?`, or a template interpolation (read as `*`, the worst case). */
const FIELD = String.raw`(?:[\d*/,?-]|\$\{[^}\n]*\})+`;
const CRON_LITERAL = new RegExp(String.raw`(["'\`])(${FIELD}(?: +${FIELD}){4,5})\1`, 'g');
const OPT_IN = /wall-clock schedules: \S.{15,}/;
/**
 * A housekeeping job (node-cron, on this machine's clock) given a whole number of hours or days,
 * as a flag (`--outbox-interval 1d`) or a harness option, runs at the top of the hour or at
 * midnight: a test that meant "not during this test" gets it in whichever run crosses that time.
 */
const HOUSEKEEPING_HOURS = /(?:--[a-z-]+-interval['"],\s*|\b(?:reconcile|gauges|outbox|gaugesInterval):\s*)['"](\d+[hd])['"]/g;

/**
 * Whether `pattern` fires within {@link WITHIN} of every instant: walks the 8 days from a fixed
 * Monday, from each firing (or 10 minutes on, for patterns firing more often) to the next.
 * Gaps longer than WITHIN by less than those 10 minutes may go unseen; no real pattern has one.
 */
function firesDaily(pattern: string): boolean {
  const start = Date.parse('2026-01-05T00:00:00Z');
  let expression;
  try {
    expression = CronExpressionParser.parse(pattern, { tz: 'UTC', currentDate: new Date(start) });
  } catch {
    return false; // refused by rekey's config validation too: it never schedules anything
  }
  for (let at = start; at < start + 8 * 24 * HOUR; ) {
    expression.reset(new Date(at));
    const next = expression.next().getTime();
    if (next - at > WITHIN) return false;
    at = Math.max(next, at + 10 * 60_000);
  }
  return true;
}

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Cron-like string literals of `text`, interpolations read as `*`. */
function cronLiterals(text: string): string[] {
  return [...text.matchAll(CRON_LITERAL)].map((match) => match[2]!.replace(/\$\{[^}\n]*\}/g, '*'));
}

/** Housekeeping schedules of an hour or more among `text`'s flags and harness options. */
function hourlyHousekeeping(text: string): string[] {
  return [...text.matchAll(HOUSEKEEPING_HOURS)].map((match) => match[1]!);
}

describe('the checks themselves', () => {
  it('refuse daily and more frequent patterns, and pass weekly, yearly and invalid ones', () => {
    expect(['0 3 * * *', '0 * * * *', '* * * * * *', '*/5 * * * *', '0 0 12 * * *', '30 3,15 * * *'].filter(firesDaily)).toHaveLength(6);
    expect(['0 3 * * 1', '0 3 * * 1-5', '0 0 1 1 *', '* * 1 6 *', '61 * * * *', '0 0 31 2 *'].filter(firesDaily)).toEqual([]);
  });

  it('find patterns in YAML inside template literals and in plain strings, interpolations read as the worst case', () => {
    const text = `
    schedule: { cron: "0 * * * *" }
    const weekly = '0 3 * * 1';
    x: \`\${i % 60} 3 * * *\`, y: "\${later.cron}", z: 'not 1 2 a cron'`;
    expect(cronLiterals(text)).toEqual(['0 * * * *', '0 3 * * 1', '* 3 * * *']);
  });

  it('find housekeeping intervals of hours or days given as worker flags or harness options', () => {
    const text = `startWorker(['--outbox-interval', '1d']); spawnWorker(env, ['--reconcile-interval', '1s']); startHarness({ gaugesInterval: '2h' }); drift: { interval: '1h' }`;
    expect(hourlyHousekeeping(text)).toEqual(['1d', '2h']);
  });

  it('laterSchedule() is first due the hours asked ahead, and not before, every day or every week from there', () => {
    for (const now of [new Date('2026-12-06T23:59:30Z'), new Date('2027-03-01T11:00:00Z'), new Date()]) {
      for (const every of ['day', 'week'] as const) {
        const { cron, next } = laterSchedule({ hours: 12, every, now });
        const local = CronExpressionParser.parse(laterSchedule({ hours: 12, every, now, clock: 'local' }).cron, { currentDate: now });
        expect(local.next().toDate()).toEqual(next);
        expect(next.getTime() - now.getTime()).toBeGreaterThanOrEqual(12 * HOUR);
        expect(next.getTime() - now.getTime()).toBeLessThan(12 * HOUR + 60_000);
        const times = CronExpressionParser.parse(cron, { tz: 'UTC', currentDate: now });
        expect(times.next().toDate()).toEqual(next);
        expect(times.next().getTime() - next.getTime()).toBe((every === 'day' ? 24 : 7 * 24) * HOUR);
      }
    }
  });
});

it('no test file that runs workers holds a schedule firing every day or more often, or an hourly or daily housekeeping job, unless it says why a firing changes nothing', () => {
  // Unit tests (test/unit, *.unit.test.ts) run no job scheduler: their patterns are data.
  const roots = [join(packageRoot, 'test'), ...readdirSync(join(packageRoot, 'providers')).map((name) => join(packageRoot, 'providers', name, 'test'))];
  const unit = (file: string) => file.startsWith(join(packageRoot, 'test/unit/')) || file.endsWith('.unit.test.ts');
  const offending: string[] = [];
  for (const file of roots.flatMap((root) => (existsSync(root) ? testFiles(root) : [])).filter((file) => !unit(file))) {
    const text = readFileSync(file, 'utf8');
    if (OPT_IN.test(text)) continue;
    for (const pattern of new Set(cronLiterals(text))) if (firesDaily(pattern)) offending.push(`${relative(packageRoot, file)}: "${pattern}"`);
    for (const interval of hourlyHousekeeping(text)) offending.push(`${relative(packageRoot, file)}: housekeeping every ${interval}`);
  }
  expect(offending).toEqual([]);
});
