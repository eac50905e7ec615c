/**
 * `rekey config schema` prints src/config/rekey.schema.json, built ahead by
 * `npm run config-schema` (building it imports every provider's SDK). This fails when a zod
 * schema or the registry changed and the file was not rebuilt.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { configJsonSchema, SHIPPED_SCHEMA_PATH } from '../../src/config/json-schema.js';
import { providers } from '../../src/registry.js';

it('the shipped JSON Schema of rekey.yaml is the one the zod schemas and the registry build', async () => {
  const shipped = JSON.parse(readFileSync(SHIPPED_SCHEMA_PATH, 'utf8')) as unknown;
  expect(shipped, 'src/config/rekey.schema.json is stale: run `npm run config-schema`').toEqual(configJsonSchema(await providers.all()));
}, 60_000);
