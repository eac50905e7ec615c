/**
 * The one place logging is configured. Values never reach a log line by construction
 * (SecretValue prints `[redacted]`, core logs ids and fingerprints only); these redact
 * paths are the second belt for anything credential-shaped a library or a provider
 * might put in a structured field.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'rekey' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}
