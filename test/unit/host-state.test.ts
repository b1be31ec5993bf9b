/**
 * The rules for the one line of .secrets.env provisioning never renders, the engine's NB_IDP_MGMT_TOKEN
 * (scripts/lib/bifrost/host-state.ts), and the upload manifest that depends on them (upload.ts): the
 * manifest records a file without that line, a re-rendered file carries the host's line over unless the
 * key it is minted from changed, and the digests' salt survives until a deploy record holds it.
 */
import { describe, expect, it } from 'vitest';
import { HostFingerprints } from '../../scripts/lib/bifrost/deployed.ts';
import { parseEnvFile } from '../../scripts/lib/bifrost/env-file.ts';
import {
  carryToken,
  MINTED_PROXY_TOKEN_MARK,
  provisionedText,
  proxyTokenMinted,
  withMintedProxyToken,
} from '../../scripts/lib/bifrost/host-state.ts';
import { renderBifrostEnvFiles } from '../../scripts/lib/bifrost/render-env.ts';
import { editedOnHost, manifestSalt, recordedDigest } from '../../scripts/lib/bifrost/upload.ts';
import { sampleSecrets } from '../../scripts/lib/sandbox/sample-secrets.ts';

const values = sampleSecrets();
const { secretsEnv: rendered, dotEnv } = renderBifrostEnvFiles(values);
const tokenLines = (text: string) => text.match(/^.*NB_IDP_MGMT_TOKEN.*$/gm) ?? [];
/** The host's .secrets.env once the engine minted the token (as upsertEnvLine writes it). */
const minted = `${rendered}NB_IDP_MGMT_TOKEN=${values.AUTHENTIK_TOKEN}\n`;

describe('the engine-owned NB_IDP_MGMT_TOKEN line', () => {
  it('provisionedText leaves out the token lines of .secrets.env only, in every form', () => {
    expect(provisionedText('.secrets.env', minted)).toBe(rendered);
    const exported = `${rendered}  export NB_IDP_MGMT_TOKEN = 'x'\n`;
    expect(provisionedText('.secrets.env', exported)).toBe(rendered);
    // Another file keeps whatever it holds; a key that only starts the same is not the token.
    expect(provisionedText('.env', `${dotEnv}NB_IDP_MGMT_TOKEN=x\n`)).toBe(`${dotEnv}NB_IDP_MGMT_TOKEN=x\n`);
    const lookalike = `${rendered}NB_IDP_MGMT_TOKEN_OLD=x\n`;
    expect(provisionedText('.secrets.env', lookalike)).toBe(lookalike);
  });

  it("carryToken keeps the host's line as it stands, exactly once, when the key it is minted from is the same", () => {
    const hostLine = `export NB_IDP_MGMT_TOKEN='${values.AUTHENTIK_TOKEN}'`;
    const host = `# edited\n${hostLine}\n${rendered}`;
    const changedElsewhere = renderBifrostEnvFiles({
      ...values,
      CLOUDFLARE_API_TOKEN: 'c'.repeat(40),
    }).secretsEnv;
    const carried = carryToken(changedElsewhere, host);
    expect(tokenLines(carried)).toEqual([hostLine]);
    expect(carried.startsWith(changedElsewhere)).toBe(true);
    expect(provisionedText('.secrets.env', carried)).toBe(changedElsewhere);
    expect(parseEnvFile(carried).get('NB_IDP_MGMT_TOKEN')).toBe(values.AUTHENTIK_TOKEN);
    // The last of two lines wins, as compose reads it.
    expect(tokenLines(carryToken(rendered, `${minted}NB_IDP_MGMT_TOKEN=later\n`))).toEqual([
      'NB_IDP_MGMT_TOKEN=later',
    ]);
  });

  it('carryToken carries nothing without a host file or token, or when AUTHENTIK_TOKEN changed', () => {
    expect(carryToken(rendered, undefined)).toBe(rendered);
    expect(carryToken(rendered, rendered)).toBe(rendered);
    expect(carryToken(rendered, `${rendered}NB_IDP_MGMT_TOKEN=\n`)).toBe(rendered);
    const newKey = renderBifrostEnvFiles({ ...values, AUTHENTIK_TOKEN: 'k'.repeat(60) }).secretsEnv;
    expect(carryToken(newKey, minted)).toBe(newKey);
  });
});

describe('the NB_PROXY_TOKEN line the engine minted (marked), beside one from the SOPS file', () => {
  const { NB_PROXY_TOKEN: sops, ...noProxy } = values;
  const withoutProxy = renderBifrostEnvFiles(noProxy).secretsEnv;
  const withSops = rendered;
  const line = 'NB_PROXY_TOKEN=nbx_minted0123456789abcdefghijklmnopqrstuv';
  /** The host's .secrets.env once the engine minted the proxy token (and then the IdP token). */
  const host = `${withMintedProxyToken(withoutProxy, line)}NB_IDP_MGMT_TOKEN=${values.AUTHENTIK_TOKEN}\n`;

  it('the minted line is written once, marked, replacing any other NB_PROXY_TOKEN line', () => {
    const twice = withMintedProxyToken(withMintedProxyToken(withSops, 'NB_PROXY_TOKEN=old'), line);
    expect(twice.match(/^NB_PROXY_TOKEN=.*$/gm)).toEqual([line]);
    expect(twice.split('\n').filter((l) => l === MINTED_PROXY_TOKEN_MARK)).toHaveLength(1);
    expect(proxyTokenMinted(twice)).toBe(true);
    expect(proxyTokenMinted(withSops)).toBe(false);
  });

  it("provisionedText leaves out the minted line and its mark, and keeps the SOPS file's line", () => {
    expect(provisionedText('.secrets.env', host)).toBe(withoutProxy);
    expect(provisionedText('.secrets.env', withSops)).toBe(withSops);
    expect(parseEnvFile(withSops).get('NB_PROXY_TOKEN')).toBe(sops);
  });

  it('carryToken carries the minted line only while the SOPS file has no NB_PROXY_TOKEN', () => {
    const carried = carryToken(withoutProxy, host);
    expect(parseEnvFile(carried).get('NB_PROXY_TOKEN')).toBe(line.split('=')[1]);
    expect(provisionedText('.secrets.env', carried)).toBe(withoutProxy);
    // A value in the SOPS file wins: the minted one is not carried beside it.
    const won = carryToken(withSops, host);
    expect(won.match(/^NB_PROXY_TOKEN=.*$/gm)).toEqual([`NB_PROXY_TOKEN=${sops}`]);
    expect(won).not.toContain(MINTED_PROXY_TOKEN_MARK);
    // A SOPS line on the host (unmarked) is not the engine's: removed from the SOPS file, it goes.
    expect(carryToken(withoutProxy, withSops)).toBe(withoutProxy);
  });
});

describe('the upload manifest', () => {
  const fp = HostFingerprints.forHost('fingerprint-key-0123456789abcdef', undefined);
  const digest = (data: Buffer) => fp.digest(data);
  const sent = { sha256: recordedDigest('.secrets.env', rendered, 0o600, digest), mode: 0o600 };
  const local = [{ path: '.secrets.env', content: rendered, mode: 0o600 }];

  it('records .secrets.env without the token line: minting, carrying or replacing it changes no digest', () => {
    expect(recordedDigest('.secrets.env', minted, 0o600, digest)).toBe(sent.sha256);
    expect(recordedDigest('.secrets.env', carryToken(rendered, minted), 0o600, digest)).toBe(sent.sha256);
    expect(recordedDigest('.env', `${dotEnv}NB_IDP_MGMT_TOKEN=x\n`, 0o600, digest)).not.toBe(
      recordedDigest('.env', dotEnv, 0o600, digest),
    );
  });

  it('calls a file edited on the host only when the host copy is not what was sent, token line aside', () => {
    const check = (host: string | undefined) =>
      editedOnHost(['.secrets.env'], local, { '.secrets.env': sent }, { '.secrets.env': host }, digest);
    expect(check(minted)).toEqual([]);
    expect(check(rendered)).toEqual([]);
    expect(check(undefined)).toEqual([]);
    expect(check(minted.replace(/^NB_RELAY_SECRET=.*$/m, 'NB_RELAY_SECRET=by-hand'))).toEqual([
      '.secrets.env',
    ]);
    // Changed here: sent anyway, so never called a hand edit.
    const changedHere = [{ ...local[0], content: `${rendered}# new\n` }] as typeof local;
    expect(
      editedOnHost(['.secrets.env'], changedHere, { '.secrets.env': sent }, { '.secrets.env': 'x' }, digest),
    ).toEqual([]);
  });

  it('keeps the salt its digests were keyed with until a deploy record holds it', () => {
    const text = JSON.stringify({ version: 1, salt: fp.salt, files: {} });
    expect(manifestSalt(text)).toBe(fp.salt);
    const again = HostFingerprints.forHost('fingerprint-key-0123456789abcdef', undefined, manifestSalt(text));
    expect(again.digest(rendered)).toBe(fp.digest(rendered));
    // The host's file is not trusted: anything but 32 hex digits is no salt.
    for (const bad of ['not json', '{"salt":"../x"}', '{"salt":12}', 'null', '{}'])
      expect(manifestSalt(bad)).toBeUndefined();
    expect(manifestSalt(undefined)).toBeUndefined();
  });
});
