/**
 * Option value parsers: a value that is not what the option takes is a usage error
 * (commander's InvalidArgumentError: exit 2, the message and the usage hint on stderr),
 * found before the command does anything.
 */
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../core/duration.js';
import { PREFIX_PATTERN } from '../core/key-format.js';
import { housekeepingCron } from '../housekeeping.js';

/** A TCP port number, 0-65535. */
export function port(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new InvalidArgumentError('not a TCP port (0-65535)');
  return Number(text);
}

/** A whole number from 1 (`--version 3`, `--concurrency 4`). */
export function positiveInt(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('not a whole number from 1');
  return Number(text);
}

/** A duration such as 30s, 5m, 1h; kept as written, so help shows the default as given. */
export function duration(text: string): string {
  if (parseDuration(text) === undefined) throw new InvalidArgumentError('not a duration (e.g. 30s, 5m, 1h)');
  return text;
}

/** A key prefix for `keygen`. */
export function keyPrefix(text: string): string {
  if (!PREFIX_PATTERN.test(text)) throw new InvalidArgumentError('a prefix is up to 32 characters of A-Z a-z 0-9 _');
  return text;
}

/** A housekeeping schedule: a duration that divides a minute, hour or day (15s), or a cron expression with seconds. */
export function schedule(text: string): string {
  try {
    housekeepingCron(text, '-');
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message.slice('-: '.length));
  }
  return text;
}

/** Secrets `rekey status` and `rekey list` show per page unless told (`--limit`). */
export const STATUS_PAGE = 50;

/** The command for the page after the one that ended with `last`: what `rekey status` and `rekey list` end with. */
export function nextPageCommand(command: string, last: string, limit: number): string {
  return `rekey ${command} --after ${last}${limit === STATUS_PAGE ? '' : ` --limit ${limit}`}`;
}
