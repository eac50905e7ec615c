// A PostgreSQL or Redis failure is described in one line with the URL to check, its password masked
// (src/cli/failures.ts). Redis' sentinel and cluster forms list several hosts, which the WHATWG URL
// parser refuses: such a URL was printed whole as the place that could not be reached, password included.
import { expect, it } from 'vitest';
import { describeInfraFailure, maskUrl } from '../../src/cli/failures.js';

const databaseUrl = 'postgresql://rekey@127.0.0.1:5432/rekey';

it('masks the password of a sentinel or cluster REDIS_URL, and names its hosts', () => {
  const closed = new Error('Connection is closed.');
  expect(describeInfraFailure(closed, { databaseUrl, redisUrl: 'redis+sentinel://:hunter2@h1:26379,h2:26379/mymaster' })).toBe(
    'cannot reach Redis at h1:26379,h2:26379: is it running? REDIS_URL=redis+sentinel://:***@h1:26379,h2:26379/mymaster',
  );
  expect(describeInfraFailure(closed, { databaseUrl, redisUrl: 'rediss+cluster://default:hunter2@h1:6379,h2:6379?password=hunter3' })).toBe(
    'cannot reach Redis at h1:6379,h2:6379: is it running? REDIS_URL=rediss+cluster://default:***@h1:6379,h2:6379?password=***',
  );
  expect(maskUrl('redis+cluster://h1:6379,h2:6379')).toBe('redis+cluster://h1:6379,h2:6379');
});

it('shows nothing of a URL it cannot split safely', () => {
  for (const text of ['redis+sentinel://:pa/ss@h1:26379,h2:26379/m', 'redis+cluster://u:p#ss@h1:6379,h2:6379', 'not a url with hunter2']) {
    const line = describeInfraFailure(new Error('Connection is closed.'), { databaseUrl, redisUrl: text });
    expect(line).not.toMatch(/ss@|hunter2|p#/);
    expect(maskUrl(text)).toBe('(not a URL)');
  }
});
