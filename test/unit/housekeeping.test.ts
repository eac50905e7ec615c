// The per-process housekeeping scheduler on node-cron: schedules (cron or even
// durations), runs that never overlap, runNow() coalescing, failures logged by code, and
// stop() waiting for the run in flight. Gated on the jobs' own progress, not on sleeps.
import { afterEach, describe, expect, it } from 'vitest';
import { RekeyError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { cronEveryAtMost, Housekeeping, housekeepingCron } from '../../src/housekeeping.js';

/** A logger that keeps every line's fields and message. */
function recordingLogger(lines: Array<Record<string, unknown>>): Logger {
  const log: Logger = {
    child: (bindings) => ({ ...recordingLogger(lines), child: (more) => log.child({ ...bindings, ...more }) }),
    debug: (obj, msg) => void lines.push({ level: 'debug', ...obj, msg }),
    info: (obj, msg) => void lines.push({ level: 'info', ...obj, msg }),
    warn: (obj, msg) => void lines.push({ level: 'warn', ...obj, msg }),
    error: (obj, msg) => void lines.push({ level: 'error', ...obj, msg }),
  };
  return log;
}

/** A promise with its resolve function, to hold a job's run until the test lets it go. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

let housekeeping: Housekeeping | undefined;
afterEach(() => housekeeping?.stop());

describe('housekeepingCron', () => {
  it.each([
    ['1s', '* * * * * *'],
    ['15s', '*/15 * * * * *'],
    ['1m', '0 */1 * * * *'],
    ['5m', '0 */5 * * * *'],
    ['1h', '0 0 */1 * * *'],
    ['6h', '0 0 */6 * * *'],
    ['1d', '0 0 0 * * *'],
    ['*/10 * * * * *', '*/10 * * * * *'],
    ['0 3 * * *', '0 3 * * *'],
  ])('%s runs as %s', (text, expression) => {
    expect(housekeepingCron(text, 'test')).toBe(expression);
  });

  it.each(['7s', '90m', '500ms', '2d', 'every minute', '* * *', '61 * * * * *'])('refuses %s, naming the setting', (text) => {
    expect(() => housekeepingCron(text, '--reconcile-interval')).toThrow(RekeyError);
    expect(() => housekeepingCron(text, '--reconcile-interval')).toThrow(/--reconcile-interval/);
  });

  it('cronEveryAtMost runs at least as often as asked', () => {
    expect(cronEveryAtMost(90 * 60_000)).toBe('0 0 */1 * * *');
    expect(cronEveryAtMost(7000)).toBe('*/6 * * * * *');
    expect(cronEveryAtMost(3_600_000)).toBe('0 0 */1 * * *');
    expect(cronEveryAtMost(10)).toBe('* * * * * *');
    expect(cronEveryAtMost(7 * 86_400_000)).toBe('0 0 0 * * *');
  });
});

describe('Housekeeping', () => {
  it('runs a job on its schedule, and again after a failure, logging the error code only', async () => {
    const lines: Array<Record<string, unknown>> = [];
    housekeeping = new Housekeeping(recordingLogger(lines));
    let runs = 0;
    housekeeping.schedule({
      name: 'flaky',
      schedule: '1s',
      run: () => {
        runs++;
        return runs === 1 ? Promise.reject(new RekeyError('REKEY_ERR_UNAVAILABLE', 'the peer said no')) : Promise.resolve();
      },
    });
    expect(housekeeping.jobs()).toEqual([{ name: 'flaky', cron: '* * * * * *', next: expect.any(Date) as Date }]);
    await expect.poll(() => runs, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    const failed = lines.find((line) => line.level === 'warn');
    expect(failed).toMatchObject({ job: 'flaky', msg: expect.stringContaining('will run again') as string });
    expect(JSON.stringify(failed)).toContain('REKEY_ERR_UNAVAILABLE');
  });

  it('never runs a job twice at once: runNow() during a run queues one more run, shared by every caller', async () => {
    housekeeping = new Housekeeping(recordingLogger([]));
    const held = gate();
    let running = 0;
    let most = 0;
    let runs = 0;
    housekeeping.schedule({
      name: 'slow',
      schedule: '1d',
      run: async () => {
        runs++;
        most = Math.max(most, ++running);
        if (runs === 1) await held.promise;
        running--;
      },
    });
    const first = housekeeping.runNow('slow');
    const again = [housekeeping.runNow('slow'), housekeeping.runNow('slow'), housekeeping.runNow('slow')];
    expect(runs).toBe(1);
    held.open();
    await first;
    await Promise.all(again);
    expect(runs).toBe(2);
    expect(most).toBe(1);
  });

  it('runs immediately when asked; scheduling a name again replaces the job; stop() waits for the run in flight', async () => {
    housekeeping = new Housekeeping(recordingLogger([]));
    const held = gate();
    const ran: string[] = [];
    housekeeping.schedule({ name: 'job', schedule: '1d', immediately: true, run: () => Promise.resolve(void ran.push('old')) });
    expect(ran).toEqual(['old']);
    housekeeping.schedule({
      name: 'job',
      schedule: '1h',
      immediately: true,
      run: async () => {
        ran.push('new');
        await held.promise;
        ran.push('new done');
      },
    });
    expect(housekeeping.jobs().map((j) => j.cron)).toEqual(['0 0 */1 * * *']);
    let stopped = false;
    const stopping = housekeeping.stop().then(() => (stopped = true));
    await Promise.resolve();
    expect(stopped).toBe(false);
    held.open();
    await stopping;
    expect(ran).toEqual(['old', 'new', 'new done']);
    expect(housekeeping.jobs()).toEqual([]);
    await housekeeping.runNow('job'); // unknown after stop: nothing runs
    expect(ran).toHaveLength(3);
  });
});
