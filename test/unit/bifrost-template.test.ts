import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_PLACEHOLDERS } from '../../scripts/lib/bifrost/plan.ts';
import { renderYamlTemplate } from '../../scripts/lib/bifrost/template.ts';

const TEMPLATE = readFileSync(
  resolve(import.meta.dirname, '../../cloud/bifrost/netbird/config.yaml.tmpl'),
  'utf8',
);
const opts = { allowed: CONFIG_PLACEHOLDERS, file: 'netbird/config.yaml.tmpl' };

// Every character the original's sed broke on, and a few more.
const AWKWARD = [
  `a&b|c\\d/e"f'g$h`,
  'line1\nline2',
  '\\1 \\n & |',
  'ünï©ødé ${NB_RELAY_SECRET}',
  '#not-a-comment: x',
];

describe('renderYamlTemplate on the NetBird template', () => {
  it('fills the placeholders it uses with values that parse back exactly, whatever they hold', () => {
    for (const v of AWKWARD) {
      const values = {
        NB_RELAY_SECRET: `relay-${v}`,
        NB_DATA_STORE_KEY: `store-${v}`,
        NB_IDP_MGMT_TOKEN: `tok-${v}`,
        NB_OWNER_PASSWORD_HASH: `$2b$10$${v}`,
      };
      const config = parse(renderYamlTemplate(TEMPLATE, values, opts));
      expect(config.server.authSecret).toBe(values.NB_RELAY_SECRET);
      expect(config.server.auth.owner).toEqual({
        email: 'admin@madhan.app',
        password: values.NB_OWNER_PASSWORD_HASH,
      });
      expect(config.server.store.encryptionKey).toBe(values.NB_DATA_STORE_KEY);
      expect(config.server.auth.dashboardRedirectURIs).toEqual([
        'https://netbird.madhan.app/nb-auth',
        'https://netbird.madhan.app/nb-silent-auth',
      ]);
      expect(config.server.listenAddress).toBe(':80');
    }
  });

  it('is deterministic: rendering twice gives the same bytes', () => {
    const values = {
      NB_RELAY_SECRET: 'r',
      NB_DATA_STORE_KEY: 's',
      NB_IDP_MGMT_TOKEN: 't',
      NB_OWNER_PASSWORD_HASH: 'h',
    };
    expect(renderYamlTemplate(TEMPLATE, values, opts)).toBe(renderYamlTemplate(TEMPLATE, values, opts));
  });

  it('names an unresolved placeholder', () => {
    expect(() =>
      renderYamlTemplate(
        TEMPLATE,
        { NB_RELAY_SECRET: 'r', NB_IDP_MGMT_TOKEN: 't', NB_OWNER_PASSWORD_HASH: 'h' },
        opts,
      ),
    ).toThrow(/no value for \$\{NB_DATA_STORE_KEY\}/);
  });

  it('names an unknown placeholder', () => {
    expect(() => renderYamlTemplate(`${TEMPLATE}\nextra: "\${NB_OWNER_HASH}"\n`, {}, opts)).toThrow(
      /unknown placeholder\(s\) \$\{NB_OWNER_HASH\}/,
    );
  });

  it('handles plain and embedded placeholders, and refuses single-quoted embedding', () => {
    const values = { NB_RELAY_SECRET: 'x: "y" #z', NB_DATA_STORE_KEY: 's', NB_IDP_MGMT_TOKEN: 't' };
    const doc = parse(
      renderYamlTemplate(
        'a: ${NB_RELAY_SECRET}\nb: "pre-${NB_DATA_STORE_KEY}-post"\nc:\n  - ${NB_IDP_MGMT_TOKEN}\n',
        values,
        opts,
      ),
    );
    expect(doc).toEqual({ a: 'x: "y" #z', b: 'pre-s-post', c: ['t'] });
    expect(() => renderYamlTemplate("a: 'pre-${NB_DATA_STORE_KEY}'\n", values, opts)).toThrow(
      /cannot be inserted safely/,
    );
  });
});
