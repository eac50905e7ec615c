import { z } from 'zod';

/** The `providers:` entry: nothing to configure (the keys are a managed secret's clients). */
export const clientKeyConfig = z.object({}).strict();
export type ClientKeyConfig = z.infer<typeof clientKeyConfig>;

/** An entry of `delivery.authenticators`. */
export const clientKeyBinding = z
  .object({
    /** A managed secret with `clients:`: each client's own key authenticates it. */
    secret: z.string().min(1).describe('A managed secret with clients: (one key per client); a client presents its own key'),
  })
  .strict();
export type ClientKeyBinding = z.infer<typeof clientKeyBinding>;
