import { z } from 'zod';
import { PREFIX_PATTERN } from '../../src/core/key-format.js';

export const randomConfig = z.object({}).strict();

export const randomIssuerBinding = z
  .object({
    prefix: z
      .string()
      .regex(PREFIX_PATTERN, 'a prefix is up to 32 characters of A-Z a-z 0-9 _')
      .default('rk_')
      .describe('Identifies your keys to secret scanners, e.g. rk_live_'),
  })
  .strict();

export type RandomIssuerBinding = z.infer<typeof randomIssuerBinding>;
