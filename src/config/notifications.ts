/**
 * The `notifications:` section of rekey.yaml: where alerts go and which ones (docs/notifications.md).
 *
 * ```yaml
 * notifications:
 *   destinations:
 *     oncall:
 *       type: webhook                         # Standard Webhooks signed POST
 *       url: https://alerts.example.com/rekey
 *       secret: ${env:ONCALL_WEBHOOK_SECRET}  # whsec_<base64>
 *       events: [rotation.failed, run.stuck, leak.received, leak.blocked, secret.no-current]
 *     chat:
 *       type: slack                           # Slack-compatible incoming webhook
 *       url: ${env:SLACK_WEBHOOK_URL}         # the URL carries its token: a reference, never inline
 *       events: [leak.blocked, rotation.due]
 *   rotationDue: { every: 90d, within: 14d }   # secrets without a schedule
 * ```
 */
import { z } from 'zod';
import { credential } from '../core/credential.js';
import { checkOutboundUrl, insecureFlag } from '../core/kit/outbound-url.js';
import { NOTICE_TYPES } from '../core/notify.js';
import { durationSchema } from './duration.js';

const DESTINATION = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const events = z
  .array(z.enum(NOTICE_TYPES))
  .min(1)
  .refine((list) => new Set(list).size === list.length, 'an event is listed twice')
  .describe(`What this destination receives: ${NOTICE_TYPES.join(', ')}`);

const retry = z
  .object({
    attempts: z.number().int().min(1).max(100).default(12).describe('Deliveries tried before the notice is given up (then logged at error level)'),
    backoff: durationSchema('5s').describe('First retry delay; doubles each attempt, at most 5 minutes'),
  })
  .strict()
  .prefault({});

const common = {
  events,
  /** Allow plain http (a receiver on loopback, a sidecar). Link-local and metadata addresses stay refused. @defaultValue false */
  insecure: insecureFlag,
  retry,
  timeout: durationSchema('10s').describe('How long one delivery may take'),
};

const webhook = z
  .object({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/ }).describe('Where notices are POSTed: https, unless insecure'),
    secret: credential().describe('The Standard Webhooks signing secret (whsec_ + base64 of 24-64 random bytes), as ${env:NAME}'),
    ...common,
  })
  .strict()
  .superRefine((config, ctx) => checkOutboundUrl(config.url, config.insecure, ['url'], ctx));

const slack = z
  .object({
    type: z.literal('slack'),
    url: credential().describe('The incoming webhook URL, as ${env:NAME} (it carries its token); checked like any URL when used'),
    ...common,
  })
  .strict();

export const notificationsSchema = z
  .object({
    destinations: z
      .record(z.string().regex(DESTINATION, 'destination names are 1-63 characters of a-z 0-9 _ -, starting with a letter or digit'), z.discriminatedUnion('type', [webhook, slack]))
      .default({}),
    rotationDue: z
      .object({
        every: durationSchema('90d').describe('How long a version of a secret without a schedule should stay current'),
        within: durationSchema('14d').describe('rotation.due is raised this long before that'),
      })
      .strict()
      .optional()
      .describe('rotation.due for secrets without a schedule: rotate every `every` since the last promotion'),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const [name, destination] of Object.entries(config.destinations)) {
      if (destination.events.includes('rotation.due') && !config.rotationDue) {
        ctx.addIssue({ code: 'custom', path: ['destinations', name, 'events'], message: 'rotation.due needs notifications.rotationDue (every, within)' });
      }
    }
  });

export type NotificationsConfig = z.infer<typeof notificationsSchema>;
export type Destination = NotificationsConfig['destinations'][string];
