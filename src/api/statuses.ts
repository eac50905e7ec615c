/**
 * The statuses a secret's health can take (src/api/secret-health.ts computes them). A module of
 * its own, free of the database client: `rekey list`'s definition names them in --help, and
 * commands that need no database must not load Prisma (test/integration/cli-start.test.ts).
 */

/** Most urgent first. */
export const CONDITIONS = ['leaked', 'no-current', 'failing', 'drifted', 'rotating'] as const;
export const STATUSES = [...CONDITIONS, 'healthy'] as const;
export type Condition = (typeof CONDITIONS)[number];
export type SecretStatusName = (typeof STATUSES)[number];
