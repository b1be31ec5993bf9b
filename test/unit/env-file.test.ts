import { describe, expect, it } from 'vitest';
import {
  formatEnvFile,
  parseEnvFile,
  quoteEnvValue,
  upsertEnvLine,
} from '../../scripts/lib/bifrost/env-file.ts';

describe('env files', () => {
  it('writes bare values bare and quotes what compose would interpret', () => {
    expect(quoteEnvValue('K', 'abc+/=')).toBe('abc+/=');
    expect(quoteEnvValue('K', 'has $dollar')).toBe("'has $dollar'");
    expect(quoteEnvValue('K', 'a #b')).toBe("'a #b'");
    expect(() => quoteEnvValue('K', 'two\nlines')).toThrow(/K contains a line break/);
    expect(() => quoteEnvValue('K', "it's $x")).toThrow(/K mixes a single quote/);
  });

  it('reads back exactly what it writes', () => {
    const entries = [
      { name: 'A', value: 'plain' },
      { name: 'B', value: 'sp ace $HOME "dq" #h \\ `b`' },
      { name: 'C', value: '' },
      { name: 'D', value: Buffer.alloc(32, 250).toString('base64') },
    ];
    const parsed = parseEnvFile(formatEnvFile(entries, 'header line'));
    expect(Object.fromEntries(parsed)).toEqual(Object.fromEntries(entries.map((e) => [e.name, e.value])));
  });

  it('upserts exactly one line for a key, keeping the others', () => {
    let text = 'A=1\nNB_IDP_MGMT_TOKEN=\nB=2\nNB_IDP_MGMT_TOKEN=old\n';
    text = upsertEnvLine(text, 'NB_IDP_MGMT_TOKEN', 'new');
    expect(text).toBe('A=1\nB=2\nNB_IDP_MGMT_TOKEN=new\n');
    expect(upsertEnvLine(text, 'NB_IDP_MGMT_TOKEN', 'new')).toBe(text);
  });

  it('parses hand-written files: comments, export, double quotes with escapes, inline comments', () => {
    const parsed = parseEnvFile('# c\nexport A=1\nB="x\\ny \\"q\\""\nC=val # comment\n\nD = spaced\n');
    expect(Object.fromEntries(parsed)).toEqual({ A: '1', B: 'x\ny "q"', C: 'val', D: 'spaced' });
  });
});
