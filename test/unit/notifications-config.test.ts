// notifications: in rekey.yaml: what validation refuses, what the apply plan and the JSON Schema show.
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { parseConfig } from '../../src/config/load.js';
import { notificationsSchema } from '../../src/config/notifications.js';
import { computePlan, formatPlan } from '../../src/config/plan.js';
import { validate } from '../../src/config/schema.js';
import { ConfigError } from '../../src/core/errors.js';
import { deliver, slackText } from '../../src/notify/deliver.js';
import { providers } from '../../src/registry.js';

const SECRET = '"${env:ONCALL_SECRET}"';
const messages = (notifications: unknown, allow = ['ONCALL_SECRET', 'SLACK_URL']) => {
  const result = validate({ env: { allow }, notifications }, [], []);
  return 'issues' in result ? result.issues.map((i) => `${i.path.join('.')}: ${i.message}`) : [];
};
const hook = (extra: Record<string, unknown>) => ({ destinations: { oncall: { type: 'webhook', url: 'https://alerts.example.com/rekey', secret: '${env:ONCALL_SECRET}', events: ['rotation.failed'], ...extra } } });

describe('notifications: validation', () => {
  it('accepts webhook and slack destinations with their defaults', () => {
    expect(messages(hook({}))).toEqual([]);
    const parsed = notificationsSchema.parse({ destinations: { chat: { type: 'slack', url: '${env:SLACK_URL}', events: ['leak.blocked'] } } });
    expect(parsed.destinations.chat).toMatchObject({ insecure: false, retry: { attempts: 12, backoff: 5000 }, timeout: 10_000, url: { kind: 'env', name: 'SLACK_URL' } });
  });

  it('applies the outbound URL rules: https unless insecure, never link-local or metadata addresses', () => {
    expect(messages(hook({ url: 'http://alerts.example.com/rekey' }))).toEqual(['notifications.destinations.oncall.url: must be https (http only with insecure: true)']);
    expect(messages(hook({ url: 'http://127.0.0.1:8080/rekey', insecure: true }))).toEqual([]);
    expect(messages(hook({ url: 'http://169.254.169.254/latest/meta-data/', insecure: true }))).toEqual(['notifications.destinations.oncall.url: must not point at a link-local or cloud metadata address']);
    expect(messages(hook({ url: 'https://metadata.google.internal/x' }))).toEqual(['notifications.destinations.oncall.url: must not point at a link-local or cloud metadata address']);
  });

  it('takes secrets and Slack URLs as ${env:NAME} references only, never rekey\'s own variables', () => {
    expect(messages(hook({ secret: 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0' }))).toEqual([
      'notifications.destinations.oncall.secret: must be a reference like ${env:NAME}; credentials are never written inline',
    ]);
    expect(messages({ destinations: { chat: { type: 'slack', url: 'https://hooks.slack.com/services/T0/B0/x', events: ['leak.blocked'] } } })).toEqual([
      'notifications.destinations.chat.url: must be a reference like ${env:NAME}; credentials are never written inline',
    ]);
    expect(messages(hook({ secret: '${env:REKEY_AUDIT_KEY}' }))).toEqual([
      "notifications.destinations.oncall.secret: ${env:REKEY_AUDIT_KEY} is rekey's own setting or credential: a config may never read it",
    ]);
  });

  it('refuses unknown events, duplicates, and rotation.due without rotationDue', () => {
    expect(messages(hook({ events: ['rotation.exploded'] }))[0]).toMatch(/^notifications\.destinations\.oncall\.events\.0: /);
    expect(messages(hook({ events: ['leak.received', 'leak.received'] }))).toEqual(['notifications.destinations.oncall.events: an event is listed twice']);
    expect(messages(hook({ events: ['rotation.due'] }))).toEqual(['notifications.destinations.oncall.events: rotation.due needs notifications.rotationDue (every, within)']);
    expect(messages({ ...hook({ events: ['rotation.due'] }), rotationDue: { every: '90d', within: '14d' } })).toEqual([]);
  });
});

describe('notifications: apply plan and JSON Schema', () => {
  const config = (destinations: string) => `env: { allow: [ONCALL_SECRET] }\nnotifications:\n  destinations:\n${destinations}`;
  const oncall = `    oncall: { type: webhook, url: "https://alerts.example.com/rekey", secret: ${SECRET}, events: [rotation.failed] }\n`;
  const chat = `    chat: { type: webhook, url: "https://chat.example.com/rekey", secret: ${SECRET}, events: [leak.blocked] }\n`;

  it('shows each destination added, changed and removed', async () => {
    const before = await parseConfig(config(oncall + chat), 'before.yaml', providers);
    const added = formatPlan(computePlan(before, [], undefined), 'before.yaml');
    expect(added).toContain('+ notifications.destinations.oncall');
    expect(added).toContain('+ notifications.destinations.chat');
    const after = await parseConfig(config(oncall.replace('[rotation.failed]', '[rotation.failed, run.stuck]')), 'after.yaml', providers);
    const plan = formatPlan(computePlan(after, [], before.document), 'after.yaml');
    expect(plan).toContain('~ notifications.destinations.oncall');
    expect(plan).toContain('- notifications.destinations.chat (it receives no more notifications)');
    const gone = await parseConfig('secrets: {}\n', 'gone.yaml', providers);
    expect(formatPlan(computePlan(gone, [], after.document), 'gone.yaml')).toContain('- notifications.destinations.oncall');
    const withDue = await parseConfig(`${config(oncall)}  rotationDue: { every: 30d }\n`, 'due.yaml', providers);
    expect(formatPlan(computePlan(withDue, [], after.document), 'due.yaml')).toContain('+ notifications.rotationDue\n');
    expect(formatPlan(computePlan(after, [], withDue.document), 'after.yaml')).toContain('- notifications.rotationDue\n');
  });

  it('names the file and the field when a config is refused', async () => {
    const error = await parseConfig(config(oncall.replace('https://', 'http://')), 'bad.yaml', providers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toContain('notifications.destinations.oncall.url');
  });

  it('is in `rekey config schema`', () => {
    const schema = configJsonSchema([]) as { properties: Record<string, { properties?: Record<string, unknown> }> };
    expect(Object.keys(schema.properties.notifications!.properties!)).toEqual(['destinations', 'rotationDue']);
    expect(JSON.stringify(schema.properties.notifications)).toContain('audit.verify-failed');
  });
});

describe('notifications: delivery', () => {
  const notice = { id: 'leak.blocked.v1', type: 'leak.blocked' as const, at: new Date(0).toISOString(), secret: 'pay<key>', data: { version: 3, code: null } };

  it('checks a Slack URL taken from the environment by the same rules when it is used', async () => {
    const chat = notificationsSchema.parse({ destinations: { chat: { type: 'slack', url: '${env:SLACK_URL}', events: ['leak.blocked'], insecure: true } } }).destinations.chat!;
    const error = await deliver(notice, 'chat', chat, { SLACK_URL: 'http://169.254.169.254/latest/' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'REKEY_ERR_CONFIG', message: 'notifications.destinations.chat.url must not point at a link-local or cloud metadata address' });
    expect(String((error as Error).message)).not.toContain('169.254');
  });

  it('writes Slack text with the title, fields and id, markup escaped', () => {
    expect(slackText(notice)).toBe('*rekey: Leaked key blocked* pay&lt;key&gt;\nversion: 3\nid leak.blocked.v1');
  });
});
