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

it('describes each authenticator type with its parameters under delivery.authenticators, and provider: references', async () => {
  type Entry = { properties: Record<string, { const?: string }>; required: string[] };
  const schema = configJsonSchema(await providers.all()) as { properties: { delivery: { properties: { authenticators: { additionalProperties: { anyOf: Entry[] } } } } } };
  const entries = schema.properties.delivery.properties.authenticators.additionalProperties.anyOf;
  const byType = new Map(entries.map((e) => [e.properties.type?.const ?? 'provider:', e]));
  expect([...byType.keys()].sort()).toEqual(['attestation-jwt', 'client-key', 'kubernetes-service-account', 'oidc', 'provider:']);
  expect(byType.get('attestation-jwt')).toMatchObject({ required: ['type', 'secret', 'audience'], properties: { maxAgeSeconds: {}, encoding: {} } });
  expect(byType.get('oidc')!.required).toEqual(['type', 'issuer', 'audience']);
  expect(byType.get('provider:')!.required).toEqual(['provider']);
}, 60_000);
