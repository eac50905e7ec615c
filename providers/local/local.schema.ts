import { z } from 'zod';
import { credential } from '../../src/core/credential.js';

export const localConfig = z
  .object({
    key: credential()
      .optional()
      .describe("AES-256 key sealing the values (32 bytes, hex or base64), as ${env:NAME}; default: rekey's own REKEY_LOCAL_STORE_KEY"),
  })
  .strict();

export const localStoreBinding = z
  .object({ name: z.string().min(1).optional().describe("Name inside the store; defaults to the secret's name") })
  .strict();

export type LocalConfig = z.infer<typeof localConfig>;
export type LocalStoreBinding = z.infer<typeof localStoreBinding>;
