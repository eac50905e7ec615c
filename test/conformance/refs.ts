import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { ProviderError } from '../../src/core/errors.js';
import type { Call, DeployedEntry, IssuedRef, StoredRef, Target, VersionRef } from '../../src/core/ports.js';
import { createFingerprinter } from '../../src/core/fingerprint.js';
import { SecretValue } from '../../src/core/secret-value.js';

/** The fingerprint key every conformance run uses. */
export const TEST_FINGERPRINT_KEY = 'a'.repeat(64);
export const fingerprint = createFingerprinter(TEST_FINGERPRINT_KEY);

export function call(timeoutMs = 10_000): Call {
  return { signal: AbortSignal.timeout(timeoutMs) };
}

let counter = 0;

/** A fresh value and a version ref that carries its fingerprint. */
export function newVersion(secret: string, consumer = secret): { ref: VersionRef; value: SecretValue } {
  const value = SecretValue.of(`conformance_${randomUUID().replaceAll('-', '')}`);
  counter += 1;
  return {
    value,
    ref: { secret, versionId: randomUUID(), number: counter, fingerprint: fingerprint(value), consumer },
  };
}

export function stored(ref: VersionRef, storeVersionId: string): StoredRef {
  return { ...ref, storeVersionId };
}

export function issued(ref: VersionRef, issuerState: IssuedRef['issuerState']): IssuedRef {
  return { ...ref, issuerState };
}

/** Awaits a promise that must reject with a ProviderError, and returns the error. */
export async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

/** What the target holds now (Target.inspect), for tests of targets that can be read. */
export async function held(target: Target, timeoutMs = 10_000): Promise<DeployedEntry[]> {
  if (!target.inspect) throw new Error('this target cannot be inspected');
  return (await target.inspect(call(timeoutMs))).entries;
}
