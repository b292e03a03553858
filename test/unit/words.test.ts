import { describe, expect, test } from 'vitest';
import { splitWords } from '../../src/words.js';

describe('splitWords', () => {
  test.each<[string, string[]]>([
    ['', []],
    ['   \t\n ', []],
    ['a', ['a']],
    ['  a  b\tc\nd  ', ['a', 'b', 'c', 'd']],
    ['--ghost-limit 10M', ['--ghost-limit', '10M']],
    [`'a b' c`, ['a b', 'c']],
    [`'a "b" \\c'`, ['a "b" \\c']],
    [`"a b"`, ['a b']],
    [`"a \\" b"`, ['a " b']],
    [`"a \\\\ b"`, ['a \\ b']],
    [`"a \\n b"`, ['a \\n b']],
    [`"it's"`, ["it's"]],
    [`a\\ b`, ['a b']],
    [`a\\'b`, ["a'b"]],
    [`''`, ['']],
    [`"" x`, ['', 'x']],
    [`a''b`, ['ab']],
    [`--external 'mnt[]:m' -v4`, ['--external', 'mnt[]:m', '-v4']],
    [`x"y z"'w'`, ['xy zw']],
    ['$HOME `id` $(id) *', ['$HOME', '`id`', '$(id)', '*']],
  ])('%j', (text, words) => {
    expect(splitWords(text)).toEqual(words);
  });

  test.each([`'open`, `"open`, `"open\\"`, `a\\`, `'a' "b`])('%j (unterminated) is undefined', (text) => {
    expect(splitWords(text)).toBeUndefined();
  });
});
