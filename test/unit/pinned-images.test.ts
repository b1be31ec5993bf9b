/**
 * The pinned-image facts are evidence only as long as each row says where it was read: a verified row
 * cites `owner/repo@ref:path`, an unverified one says where it came from instead.
 */
import { describe, expect, it } from 'vitest';
import {
  CHECKED_ON,
  type Fact,
  NETBIRD_CLIENT_STATUS,
  NETBIRD_SERVER_CONFIG,
  PINNED_IMAGES,
  pinnedImage,
  TRAEFIK_ACME,
  TRAEFIK_MATCHERS,
} from '../../scripts/lib/bifrost/pinned-images.ts';

const CITATION = /^[\w.-]+\/[\w.-]+@[\w.-]+:[\w./-]+/;

describe('pinned-image facts', () => {
  const rows: [string, Fact][] = [
    ...PINNED_IMAGES.flatMap((i) => i.programs.map((p): [string, Fact] => [`${i.image} ${p.name}`, p])),
    ['netbird-server config', NETBIRD_SERVER_CONFIG],
    ['traefik http matchers', { ...TRAEFIK_MATCHERS.http, verified: TRAEFIK_MATCHERS.verified }],
    ['traefik tcp matchers', { ...TRAEFIK_MATCHERS.tcp, verified: TRAEFIK_MATCHERS.verified }],
    ['netbird client status', NETBIRD_CLIENT_STATUS],
    ['traefik acme email', { source: TRAEFIK_ACME.emailSource, verified: true }],
    ['traefik acme deprecations', { source: TRAEFIK_ACME.deprecationSource, verified: true }],
    ["let's encrypt refused domains", { source: TRAEFIK_ACME.refusedDomainsSource, verified: false }],
  ];

  it.each(rows)('%s cites its source', (_name, fact) => {
    if (fact.verified) expect(fact.source).toMatch(CITATION);
    else expect(fact.source).toMatch(/bifrost-upstream\.md|not fetched|unverified/);
  });

  it('every image was checked on the recorded day, and each image:tag has one row', () => {
    expect(CHECKED_ON).toBe('2026-11-29');
    for (const image of PINNED_IMAGES) expect(image.checked).toBe(CHECKED_ON);
    const refs = PINNED_IMAGES.map((i) => `${i.image}:${i.tag}`);
    expect(new Set(refs).size).toBe(refs.length);
  });

  it('finds a row by the reference compose writes, registry host included', () => {
    expect(pinnedImage('ghcr.io/goauthentik/server:2025.10.4')?.programs[0]?.name).toBe('ak');
    expect(pinnedImage('traefik:v3.3')?.image).toBe('traefik');
    expect(pinnedImage('traefik:v3.4')).toBeUndefined();
    expect(pinnedImage('traefik')).toBeUndefined();
  });

  it('the NetBird config keys are distinct paths under server (44 leaves at v0.66.0, no idp)', () => {
    const keys = NETBIRD_SERVER_CONFIG.keys;
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.every((k) => k.startsWith('server.'))).toBe(true);
    expect(keys).toHaveLength(44);
    expect(keys.some((k) => k.startsWith('server.idp'))).toBe(false);
  });
});
