/**
 * `field` mode: the AWS secret holds a JSON object (the shape AWS's own rotation templates use,
 * e.g. `{"username": "...", "password": "..."}`) and rekey rotates one field of it.
 *
 * JSON.parse's error messages quote the input, and the input is a secret: every failure here is
 * reported with our own message and no cause.
 */
import { ProviderError } from '../../src/core/errors.js';
import type { JsonObject, JsonValue } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';

export interface FieldContext {
  provider: string;
  /** The AWS secret name, for messages. */
  secret: string;
  field: string;
}

/** Parses a SecretString as a JSON object. @throws ProviderError REKEY_ERR_INVALID, without quoting the text. */
export function parseDocument(text: string, context: FieldContext, version: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ProviderError(
      'REKEY_ERR_INVALID',
      `AWS secret "${context.secret}" (${version}) is not a JSON object, so field "${context.field}" cannot be rotated in it`,
      { provider: context.provider },
    );
  }
  return parsed as JsonObject;
}

/** The new SecretString: `base` (the current document, if any) with `field` replaced by the value. */
export function composeDocument(base: JsonObject | undefined, field: string, value: SecretValue): string {
  const document: Record<string, JsonValue> = { ...(base ?? {}) };
  document[field] = value.reveal();
  return JSON.stringify(document);
}

/** The field's value. @throws ProviderError REKEY_ERR_INVALID when the field is missing or not a non-empty string. */
export function extractField(text: string, context: FieldContext, version: string): SecretValue {
  const value = parseDocument(text, context, version)[context.field];
  if (typeof value !== 'string' || value.length === 0) {
    throw new ProviderError(
      'REKEY_ERR_INVALID',
      `AWS secret "${context.secret}" (${version}) has no non-empty string field "${context.field}"`,
      { provider: context.provider },
    );
  }
  return SecretValue.of(value);
}
