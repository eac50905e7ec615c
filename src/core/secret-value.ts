import { timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A credential value. Every way of turning it into text by accident (`String()`,
 * template literals, `JSON.stringify`, `util.inspect`, pino) yields `[redacted]`;
 * only {@link SecretValue.reveal} returns the value, so each place that needs it
 * is greppable.
 */
export class SecretValue {
  readonly #value: string;

  private constructor(value: string) {
    this.#value = value;
  }

  /** Wraps a value. @throws TypeError when the value is empty. */
  static of(value: string): SecretValue {
    if (typeof value !== 'string' || value.length === 0) throw new TypeError('a secret value must be a non-empty string');
    return new SecretValue(value);
  }

  /** The plaintext. Call it only where the value must leave the process (a store, a target, an issuer). */
  reveal(): string {
    return this.#value;
  }

  /** Constant-time comparison. */
  equals(other: SecretValue): boolean {
    const a = Buffer.from(this.#value);
    const b = Buffer.from(other.#value);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
