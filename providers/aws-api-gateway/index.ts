/**
 * The `aws-api-gateway` provider: a target that makes an API Gateway REST API accept API keys
 * (CreateApiKey + CreateUsagePlanKey), through the official SDK client.
 */
import { APIGatewayClient } from '@aws-sdk/client-api-gateway';
import { RekeyError } from '../../src/core/errors.js';
import { defineProvider } from '../../src/core/provider.js';
import { apiGatewayConfigSchema, apiGatewayTargetSchema, type ApiGatewayConfig, type ApiGatewayTargetParams } from './aws-api-gateway.schema.js';
import { ApiGatewayTarget } from './aws-api-gateway.target.js';
import { ApiGatewayUsage } from './aws-api-gateway.usage.js';

export const awsApiGateway = defineProvider<ApiGatewayConfig, never, never, ApiGatewayTargetParams>({
  type: 'aws-api-gateway',
  summary: 'AWS API Gateway (REST): API keys added to a usage plan, disabled then deleted on retire',
  config: apiGatewayConfigSchema,
  bindings: { target: apiGatewayTargetSchema },
  usageSource: true,
  // The target below cannot open without a usage plan: refused at apply instead.
  targetProblem: (params, _secret, config) => (params.usagePlanId ?? config.usagePlanId ? undefined : 'target needs a usagePlanId (in the binding or the provider)'),
  open(config, ctx) {
    // Credentials from the SDK's default chain; never from rekey.yaml.
    const client = new APIGatewayClient({ region: config.region, endpoint: config.endpoint, maxAttempts: config.maxAttempts });
    // One per provider instance: a read covers the usage plans of every binding.
    const usage = new ApiGatewayUsage();
    return {
      target({ secret, params }) {
        const usagePlanId = params.usagePlanId ?? config.usagePlanId;
        if (!usagePlanId) {
          throw new RekeyError('REKEY_ERR_CONFIG', `secrets.${secret}: target ${ctx.name} needs a usagePlanId (in the binding or the provider)`);
        }
        usage.plans.add(usagePlanId);
        return new ApiGatewayTarget({
          provider: ctx.name,
          client,
          secret,
          usagePlanId,
          namePrefix: config.namePrefix,
          probe: config.probe,
          log: ctx.log.child({ secret }),
          usage,
        });
      },
      close: () => Promise.resolve(client.destroy()),
    };
  },
});

export default awsApiGateway;
