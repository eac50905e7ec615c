/**
 * After `rekey apply`: each added or changed secret whose store can show a rotation policy
 * (SecretStore.describeRotation: Secret Manager's rotation and topics, Secrets Manager tags) gets
 * rekey's schedule mirrored there, so the cloud console tells the truth. Best effort by design: the
 * config is already applied, so a failure is reported for its secret and changes nothing else.
 */
import type { RekeyConfig } from '../config/schema.js';
import { timed } from '../core/call.js';
import { describeError } from '../core/errors.js';
import type { ProviderResolver } from '../core/resolved.js';

export interface RotationMetadataResult {
  secret: string;
  ok: boolean;
  /** What the store now shows, or why it could not be set (log-safe). */
  message: string;
}

/** Calls describeRotation for each named secret whose store has it, one at a time. */
export async function describeRotations(
  resolver: ProviderResolver & { config(): Promise<RekeyConfig> },
  secrets: readonly string[],
): Promise<RotationMetadataResult[]> {
  const config = await resolver.config();
  const results: RotationMetadataResult[] = [];
  for (const name of secrets) {
    const spec = config.secrets[name];
    if (!spec) continue;
    try {
      const { store, policy } = await resolver.resolve(name);
      if (!store.describeRotation) continue;
      const message = await timed('store.describeRotation', policy.timeoutMs, (call) =>
        store.describeRotation!({ schedule: spec.schedule, graceMs: spec.graceMs }, call),
      );
      results.push({ secret: name, ok: true, message });
    } catch (error) {
      results.push({ secret: name, ok: false, message: describeError(error) });
    }
  }
  return results;
}

/** Lines for apply's output. */
export function formatRotationMetadata(results: readonly RotationMetadataResult[]): string[] {
  return results.map((r) => (r.ok ? `  rotation metadata ${r.secret}: ${r.message}` : `  ! rotation metadata ${r.secret} not updated: ${r.message}`));
}
