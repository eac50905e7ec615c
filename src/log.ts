/**
 * The one place logging is configured. Values never reach a log line by construction
 * (SecretValue prints `[redacted]`, core logs ids and fingerprints only); these redact
 * paths are the second belt for anything credential-shaped a library or a provider
 * might put in a structured field.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import { describeError, sanitize } from './core/errors.js';

export const REDACT_PATHS = [
  'value',
  '*.value',
  'token',
  '*.token',
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  'privateKey',
  '*.privateKey',
  'secretAccessKey',
  '*.secretAccessKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
];

/**
 * An Error logged as an object (`{ err }` by a library such as fastify, or by mistake) goes
 * through describeError like every error rekey logs on purpose: name, code and sanitized
 * message, never the stack or a cause, whose text may come from a provider's SDK. Error
 * text logged as a string is sanitized too (control characters, length).
 */
const errorSerializer = (error: unknown): unknown => (error instanceof Error ? describeError(error) : typeof error === 'string' ? sanitize(error) : error);

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'rekey' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: errorSerializer, error: errorSerializer },
    },
    destination,
  );
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A child of `parent` with `bindings` that is made only when something is logged at a level
 * `parent` writes: what a request logger is on routes answered thousands of times a second.
 * fastify makes a child logger per request for its request id; with the redact paths above
 * pino spent about 3 KB and a few microseconds on each (bench/delivery), though the routes log
 * nothing but errors. The lines it writes are the child's, bindings and all.
 */
export class LazyChildLogger {
  #child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: pino.Bindings,
  ) {}

  private real(): Logger {
    return (this.#child ??= this.parent.child(this.childBindings));
  }

  get level(): string {
    return (this.#child ?? this.parent).level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    return (this.#child ?? this.parent).isLevelEnabled(level);
  }

  bindings(): pino.Bindings {
    return this.real().bindings();
  }

  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.real().child(bindings, options);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  error(...args: unknown[]): void {
    this.write('error', args);
  }

  warn(...args: unknown[]): void {
    this.write('warn', args);
  }

  info(...args: unknown[]): void {
    this.write('info', args);
  }

  debug(...args: unknown[]): void {
    this.write('debug', args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }

  silent(): void {}

  private write(level: Level, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return;
    this.real()[level](...(args as [unknown]));
  }
}

/**
 * A fastify `childLoggerFactory` making {@link LazyChildLogger}s; a route with a log level or
 * serializers of its own gets an ordinary child.
 */
export function lazyChildLoggers(logger: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions): Logger {
  if (Object.keys(options).length) return logger.child(bindings, options);
  return new LazyChildLogger(logger, bindings) as unknown as Logger;
}
