/**
 * The port of compose v2's env-file parser (test/helpers/compose-v2-dotenv.ts) against compose-go's own
 * expectations: compose-spec/compose-go@v2.13.0:dotenv/godotenv_test.go (TestParsing, TestLoadQuotedEnv,
 * TestSubstitutions, TestUnterminatedQuotes) with its fixtures dotenv/fixtures/quoted.env and
 * substitutions.env. The port is the v2 oracle of the env-file tests, so it is held to upstream here.
 */
import { describe, expect, it } from 'vitest';
import { parseComposeV2Dotenv } from '../helpers/compose-v2-dotenv.ts';

const one = (line: string) => [...parseComposeV2Dotenv(line).entries()];

describe('the compose v2 env-file parser port', () => {
  it('reads what upstream TestParsing expects', () => {
    const cases: [string, string, string][] = [
      ['FOO =bar', 'FOO', 'bar'],
      ['FOO= bar', 'FOO', 'bar'],
      ['FOO="escaped\\"bar"', 'FOO', 'escaped"bar'],
      [`FOO="'d'"`, 'FOO', "'d'"],
      ['OPTION_A: Foo=bar', 'OPTION_A', 'Foo=bar'],
      ["export OPTION_B='\\n'", 'OPTION_B', '\\n'],
      ['FOO="bar\\nbaz"', 'FOO', 'bar\nbaz'],
      ['FOO=a\\tb', 'FOO', 'a\\tb'],
      ['KEY="Z\\aZ\\bZ\\fZ\\nZ\\rZ\\tZ\\vZ\\\\Z\\0123Z"', 'KEY', 'Z\x07Z\bZ\fZ\nZ\rZ\tZ\vZ\\ZSZ'],
      ['FOO=bar # this is foo', 'FOO', 'bar'],
      ['FOO=123#not-an-inline-comment', 'FOO', '123#not-an-inline-comment'],
      ["FOO='bar#baz' # comment", 'FOO', 'bar#baz'],
      ['FOO="bar\\n\\ b\\az"', 'FOO', 'bar\n\\ b\x07z'],
      ['FOO="bar\\\\\\n\\ b\\az"', 'FOO', 'bar\\\n\\ b\x07z'],
      ['FOO="bar\\\\r\\ b\\az"', 'FOO', 'bar\\r\\ b\x07z'],
      ['FOO="bar\\nbaz\\\\"', 'FOO', 'bar\nbaz\\'],
      ['KEY="\\x07"', 'KEY', '\\x07'],
    ];
    for (const [line, key, value] of cases) expect(one(line), line).toEqual([[key, value]]);
  });

  it('reads the quoted.env fixture as upstream TestLoadQuotedEnv expects', () => {
    const fixture = [
      "OPTION_A='1'",
      "OPTION_D='\\n'",
      'OPTION_H="\\n"',
      `OPTION_I = "echo 'asd'" # Inline comment`,
      "OPTION_J = 'first line\nsecond line'",
      "OPTION_K='Let\\'s go!'",
      'OPTION_Z = "last value"',
    ].join('\n');
    expect(Object.fromEntries(parseComposeV2Dotenv(fixture))).toEqual({
      OPTION_A: '1',
      OPTION_D: '\\n',
      OPTION_H: '\n',
      OPTION_I: "echo 'asd'",
      OPTION_J: 'first line\nsecond line',
      OPTION_K: "Let's go!",
      OPTION_Z: 'last value',
    });
  });

  it('interpolates as upstream TestSubstitutions expects, `$$` as a `$`', () => {
    const fixture = 'A=1\nB=${A}\nC=$B\nD=${A}_${B}\nE=${NOT_DEFINED}\nF="$$x"\nG=\'$A\'';
    expect(Object.fromEntries(parseComposeV2Dotenv(fixture))).toEqual({
      A: '1',
      B: '1',
      C: '1',
      D: '1_1',
      E: '',
      F: '$x',
      G: '$A',
    });
  });

  it('refuses unterminated quotes as upstream TestUnterminatedQuotes expects', () => {
    for (const line of ['KEY="', 'KEY="value\\"', "KEY='value\\'", `KEY='value"`]) {
      expect(() => parseComposeV2Dotenv(line), line).toThrow(/unterminated quoted value/);
    }
  });
});
