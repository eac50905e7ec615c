import { expect, it } from 'vitest';
import { parseExposition } from '../prometheus-text.js';

it('parses samples, labels with escapes, special values and skips comments and garbage', () => {
  const text = [
    '# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong',
    '# TYPE kong_http_requests_total counter',
    'kong_http_requests_total{service="s",route="r",code="200",source="service",workspace="default",consumer="o\\"brien\\\\ops"} 12',
    'kong_http_requests_total{code="500" , consumer="a,b}c\\nd",} 3 1700000000000',
    'kong_datastore_reachable 1',
    'weird_value NaN',
    'up +Inf',
    '',
    'not a sample {',
    'broken{consumer="unterminated} 4',
  ].join('\n');
  const samples = parseExposition(text);
  expect(samples.map((s) => [s.name, Object.fromEntries(s.labels), s.value])).toEqual([
    ['kong_http_requests_total', { service: 's', route: 'r', code: '200', source: 'service', workspace: 'default', consumer: 'o"brien\\ops' }, 12],
    ['kong_http_requests_total', { code: '500', consumer: 'a,b}c\nd' }, 3],
    ['kong_datastore_reachable', {}, 1],
    ['weird_value', {}, NaN],
    ['up', {}, Infinity],
  ]);
});
