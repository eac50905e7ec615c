import { defineProvider } from '../../src/core/provider.js';
import { RandomIssuer } from './random.issuer.js';
import { randomConfig, randomIssuerBinding } from './random.schema.js';

/** `issuer: { type: random, prefix: rk_live_ }` */
export default defineProvider({
  type: 'random',
  summary: 'Mints first-party API keys: prefix + 30 random base62 characters + CRC32 checksum',
  config: randomConfig,
  bindings: { issuer: randomIssuerBinding },
  open: (_config, ctx) => ({ issuer: ({ params }) => new RandomIssuer(params, ctx.name) }),
});
