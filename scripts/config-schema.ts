// Writes src/config/rekey.schema.json, the JSON Schema `rekey config schema` prints, from the
// zod schemas of the document and of every provider in the registry (which this imports, SDKs
// and all: the reason the command prints a file instead of building it). A unit test fails when
// the file is stale.
//
//   npm run config-schema
import { writeFileSync } from 'node:fs';
import { configJsonSchema, SHIPPED_SCHEMA_PATH } from '../src/config/json-schema.js';
import { providers } from '../src/registry.js';

writeFileSync(SHIPPED_SCHEMA_PATH, `${JSON.stringify(configJsonSchema(await providers.all()), null, 2)}\n`);
console.log(`wrote ${SHIPPED_SCHEMA_PATH}`);
