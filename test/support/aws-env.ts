/**
 * The environment the AWS SDK's default credential chain needs to stay on loopback in tests
 * and benches: dummy static keys read first, no instance metadata lookups, no profile or
 * session token from the machine.
 */
export const LOOPBACK_AWS_ENV: Readonly<Record<string, string | undefined>> = {
  AWS_ACCESS_KEY_ID: 'AKIAREKEYTESTFAKE000',
  AWS_SECRET_ACCESS_KEY: 'rekey-test-dummy-secret-key',
  AWS_SESSION_TOKEN: undefined,
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_PROFILE: undefined,
};

/**
 * Sets LOOPBACK_AWS_ENV (with `overrides`, e.g. a fake's own caller key id) on process.env and
 * returns the function that puts back what was there before.
 */
export function useLoopbackAwsEnv(overrides: Record<string, string | undefined> = {}): () => void {
  const values = { ...LOOPBACK_AWS_ENV, ...overrides };
  const saved = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
  setEnv(values);
  return () => setEnv(saved);
}

function setEnv(values: Record<string, string | undefined>): void {
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
}
