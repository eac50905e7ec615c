// A real rekey logger (pino, with rekey's serializers and redaction) whose lines are kept in memory.
import type { Logger } from '../../src/core/logger.js';
import { createLogger } from '../../src/log.js';

export function capturedLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', { write: (line: string) => void lines.push(line) }), lines };
}
