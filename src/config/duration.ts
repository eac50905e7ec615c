/** Durations in rekey.yaml (zod lives here, not in src/core/duration.ts, which the CLI loads for every command). */
import { z } from 'zod';
import { DURATION_EXAMPLES, parseDuration } from '../core/duration.js';

/** A duration in rekey.yaml (`fallback` when absent), parsed to milliseconds. */
export const durationSchema = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (${DURATION_EXAMPLES})` });
        return z.NEVER;
      }
      return ms;
    });

/** A duration in rekey.yaml with no fixed default (the caller derives one), parsed to milliseconds or undefined. */
export const optionalDurationSchema = () =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined) return undefined;
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (${DURATION_EXAMPLES})` });
        return z.NEVER;
      }
      return ms;
    });
