/**
 * Config of the `aws-api-gateway` provider (a `providers:` entry) and of its target binding.
 * No credentials here: the SDK's default chain (IRSA, instance role, environment) supplies them.
 */
import { z } from 'zod';
import { probeSchema } from '../../src/core/kit/probe.js';

const usagePlanId = z.string().regex(/^[a-z0-9]{1,32}$/, 'must be a usage plan id such as a1b2c3');

export const apiGatewayConfigSchema = z
  .object({
    /** AWS region of the REST API, e.g. `eu-west-1`. */
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region such as eu-west-1'),
    /** Overrides the service endpoint (a VPC endpoint, or a local fake in tests). @defaultValue the regional endpoint */
    endpoint: z.url().optional(),
    /** SDK attempts per API call (the SDK's own retries of throttling and 5xx). @defaultValue 3 */
    maxAttempts: z.number().int().min(1).max(10).default(3),
    /** The usage plan keys are added to; a binding may override it. */
    usagePlanId: usagePlanId.optional(),
    /** Start of every API key name rekey creates: `<prefix>/<secret>/<versionId>`. @defaultValue rekey */
    namePrefix: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/).default('rekey'),
    /** The verify probe: a method of the API that requires an API key (header `x-api-key`). */
    probe: probeSchema.optional(),
  })
  .strict();

/** Per-secret binding. */
export const apiGatewayTargetSchema = z
  .object({
    /** The usage plan for this secret's keys. @defaultValue the provider's `usagePlanId` */
    usagePlanId: usagePlanId.optional(),
  })
  .strict()
  .default({});

export type ApiGatewayConfig = z.infer<typeof apiGatewayConfigSchema>;
export type ApiGatewayTargetParams = z.infer<typeof apiGatewayTargetSchema>;
