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
