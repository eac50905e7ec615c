/**
 * The JSON Schema of rekey.yaml for editors (`rekey config schema > rekey.schema.json`,
 * then `# yaml-language-server: $schema=./rekey.schema.json`). Built from the same zod
 * schemas as validation: the outer document, plus each provider type's entry. Building it
 * imports every provider (and so every SDK, seconds of start-up), so it is built once by
 * `npm run config-schema` into {@link SHIPPED_SCHEMA_PATH}, which the command prints; a unit
 * test fails when that file no longer matches the schemas.
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { AnyProviderModule } from '../core/provider.js';
import { documentSchema, driftSchema } from './schema.js';

/** The built schema, beside this module (the CLI imports it as JSON; tsc copies it to dist/). */
export const SHIPPED_SCHEMA_PATH = fileURLToPath(new URL('./rekey.schema.json', import.meta.url));

export function configJsonSchema(modules: readonly AnyProviderModule[]): Record<string, unknown> {
  const schema = z.toJSONSchema(documentSchema, { io: 'input', unrepresentable: 'any' }) as unknown as Record<string, unknown> & {
    properties: { providers: Record<string, unknown>; delivery: { properties: { authenticators: { additionalProperties: unknown } } } };
  };
  schema.properties.providers = {
    type: 'object',
    description: 'Provider instances, by name; secrets refer to them with provider: <name>',
    additionalProperties: {
      anyOf: modules.map((m) => {
        const entry = z.toJSONSchema(m.config, { io: 'input', unrepresentable: 'any' }) as unknown as { properties?: Record<string, unknown>; required?: string[] };
        return {
          ...entry,
          description: m.summary,
          properties: {
            type: { const: m.type },
            ...(entry.properties ?? {}),
            ...(m.bindings.target ? { drift: z.toJSONSchema(driftSchema, { io: 'input', unrepresentable: 'any' }) } : {}),
          },
          required: ['type', ...(entry.required ?? [])],
        };
      }),
    },
  };
  // Each authenticator entry: `type:` and that type's parameters, or `provider:` naming a
  // providers: entry (its type, hence its parameters, known only from the rest of the document).
  schema.properties.delivery.properties.authenticators.additionalProperties = {
    anyOf: [
      ...modules.flatMap((m) => {
        if (!m.bindings.authenticator) return [];
        const entry = z.toJSONSchema(m.bindings.authenticator, { io: 'input', unrepresentable: 'any' }) as unknown as { properties?: Record<string, unknown>; required?: string[] };
        return [{ ...entry, description: m.summary, properties: { type: { const: m.type }, ...(entry.properties ?? {}) }, required: ['type', ...(entry.required ?? [])] }];
      }),
      { type: 'object', description: 'An authenticator of a providers: entry, with its parameters', properties: { provider: { type: 'string' } }, required: ['provider'], additionalProperties: {} },
    ],
  };
  return { $id: 'https://rekey.dev/schema/rekey.yaml.json', title: 'rekey.yaml', ...schema };
}
