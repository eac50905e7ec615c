import { expect, it } from 'vitest';
import { linesWithRepeatedFields, repeatedFields } from '../support/log-lines.js';

it('finds a field a log line holds twice at its top level, and only there', () => {
  expect(repeatedFields('{"level":30,"provider":"edge","provider":"edge","secret":"a","secret":"a","msg":"x"}')).toEqual(['provider', 'secret']);
  // Nested objects and arrays have their own keys; a quoted colon or escaped quote is text.
  expect(repeatedFields('{"error":{"code":"A","cause":{"code":"B"}},"list":[{"code":1},{"code":2}],"msg":"say \\"code\\": twice","code":"C"}')).toEqual([]);
  expect(linesWithRepeatedFields(['{"runId":"r","runId":"r","msg":"could not record"}', '{"msg":"fine"}'])).toEqual(['runId in "could not record"']);
});
