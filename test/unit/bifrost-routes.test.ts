/**
 * The NetBird routes of the shipped Traefik configuration, against what NetBird's own setup writes at the
 * pinned release (netbirdio/netbird@v0.66.0:infrastructure_files/getting-started.sh, reference/
 * bifrost-upstream.md §7): every server path reaches netbird-server, gRPC over h2c, the dashboard only as
 * the catch-all, and no timeout that cuts a long gRPC stream.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { matchersOf } from '../../scripts/lib/bifrost/traefik-routes.ts';
import { PROJECT_ROOT } from '../helpers/run-cli.ts';

const TRAEFIK = join(PROJECT_ROOT, 'cloud/bifrost/traefik');

interface Router {
  rule: string;
  service: string;
  priority?: number;
}

const dynamic = parse(readFileSync(join(TRAEFIK, 'dynamic.yml'), 'utf8')) as {
  http: {
    routers: Record<string, Router>;
    services: Record<string, { loadBalancer: { servers: { url: string }[] } }>;
  };
};
const routers = Object.values(dynamic.http.routers).filter((r) => r.rule.includes('netbird.madhan.app'));
const urlOf = (r: Router) => dynamic.http.services[r.service]?.loadBalancer.servers[0]?.url;

/** The router Traefik picks for a path: the highest priority whose PathPrefix list matches (or that has none). */
function routeFor(path: string): Router | undefined {
  const prefixes = (r: Router) => [...r.rule.matchAll(/PathPrefix\(`([^`]+)`\)/g)].map((m) => m[1] as string);
  return routers
    .filter((r) => prefixes(r).length === 0 || prefixes(r).some((p) => path.startsWith(p)))
    .sort((a, b) => (b.priority ?? b.rule.length) - (a.priority ?? a.rule.length))[0];
}

describe('the NetBird routes', () => {
  it.each([
    ['/signalexchange.SignalExchange/Send', 'h2c://netbird-server:80'],
    ['/management.ManagementService/Sync', 'h2c://netbird-server:80'],
    ['/relay', 'http://netbird-server:80'],
    ['/ws-proxy/management', 'http://netbird-server:80'],
    ['/api/users', 'http://netbird-server:80'],
    ['/oauth2/keys', 'http://netbird-server:80'],
    ['/', 'http://netbird-dashboard:80'],
    ['/peers', 'http://netbird-dashboard:80'],
  ])('%s goes to %s', (path, url) => {
    const router = routeFor(path);
    expect(router && urlOf(router)).toBe(url);
  });

  it('uses one argument per matcher (Traefik v3 drops a router otherwise)', () => {
    for (const r of routers)
      for (const m of matchersOf(r.rule)) expect(m.args, `${r.rule}: ${m.name}`).toBe(1);
  });

  it('lifts the read, write and idle timeouts of websecure for long gRPC streams', () => {
    const statics = parse(readFileSync(join(TRAEFIK, 'traefik.yml'), 'utf8'));
    expect(statics.entryPoints.websecure.transport.respondingTimeouts).toEqual({
      readTimeout: 0,
      writeTimeout: 0,
      idleTimeout: 0,
    });
  });
});
