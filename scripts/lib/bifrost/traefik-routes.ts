/**
 * Traefik's routing as the bundle writes it, read for check-bundle: the routers and services of the file
 * provider's dynamic config and of `traefik.*` container labels, and each rule's matchers. A router that
 * names an undefined service, or a rule Traefik v3 refuses, is dropped by Traefik at run time with only
 * a log line, so these are found here instead.
 */
import { parse } from 'yaml';
import { TRAEFIK_MATCHERS } from './pinned-images.ts';

export type Protocol = 'http' | 'tcp';

export interface Router {
  protocol: Protocol;
  name: string;
  /** `file` (dynamic config) or `docker` (labels). */
  provider: 'file' | 'docker';
  /** Where it is written: the dynamic config's bundle path, or docker-compose.yml. */
  file: string;
  /** YAML path of the router (for a line number). */
  path: readonly (string | number)[];
  rule?: string;
  ruleSyntax?: string;
  service?: string;
}

export interface Routing {
  routers: Router[];
  /** `protocol/provider` → the service names defined there. */
  services: Map<string, Set<string>>;
  /** The file provider's TCP load balancers: where each sends, and the PROXY protocol version if any. */
  tcpBackends?: Map<string, { addresses: string[]; proxyProtocol?: number }>;
}

/** Routers and services of one dynamic-config file (file provider). */
export function readDynamicConfig(file: string, text: string, into: Routing): void {
  const doc = (parse(text) ?? {}) as Partial<Record<Protocol, { routers?: object; services?: object }>>;
  for (const [name, def] of Object.entries(doc.tcp?.services ?? {})) {
    const lb = (
      (def ?? {}) as { loadBalancer?: { servers?: unknown; proxyProtocol?: { version?: unknown } } }
    ).loadBalancer;
    const servers = Array.isArray(lb?.servers) ? (lb.servers as { address?: unknown }[]) : [];
    into.tcpBackends ??= new Map();
    into.tcpBackends.set(name, {
      addresses: servers.flatMap((s) => (typeof s?.address === 'string' ? [s.address] : [])),
      // Traefik's default for a present `proxyProtocol: {}` is version 2 (dynamic.ProxyProtocol SetDefaults).
      proxyProtocol: lb?.proxyProtocol ? Number(lb.proxyProtocol.version ?? 2) : undefined,
    });
  }
  for (const protocol of ['http', 'tcp'] as const) {
    const section = doc[protocol] ?? {};
    for (const name of Object.keys(section.services ?? {})) defined(into, protocol, 'file').add(name);
    for (const [name, def] of Object.entries(section.routers ?? {})) {
      const r = (def ?? {}) as { rule?: unknown; ruleSyntax?: unknown; service?: unknown };
      into.routers.push({
        protocol,
        name,
        provider: 'file',
        file,
        path: [protocol, 'routers', name],
        rule: typeof r.rule === 'string' ? r.rule : undefined,
        ruleSyntax: typeof r.ruleSyntax === 'string' ? r.ruleSyntax : undefined,
        service: typeof r.service === 'string' ? r.service : undefined,
      });
    }
  }
}

const LABEL = /^traefik\.(http|tcp)\.(routers|services)\.([^.]+)\.(.+)$/;

/** Routers and services a compose service declares in `traefik.*` labels (docker provider). */
export function readLabels(service: string, labels: unknown, into: Routing): void {
  const entries: [string, string][] = Array.isArray(labels)
    ? labels.map((l) => String(l).split(/=(.*)/s).slice(0, 2) as [string, string])
    : Object.entries((labels ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]);
  const routers = new Map<string, Router>();
  for (const [key, value] of entries) {
    const m = LABEL.exec(key);
    if (!m) continue;
    const [, protocol, kind, name, attr] = m as unknown as [string, Protocol, string, string, string];
    if (kind === 'services') {
      defined(into, protocol, 'docker').add(name);
      continue;
    }
    const id = `${protocol}/${name}`;
    const router = routers.get(id) ?? {
      protocol,
      name,
      provider: 'docker',
      file: 'docker-compose.yml',
      path: ['services', service, 'labels'],
    };
    routers.set(id, router);
    if (attr === 'rule') router.rule = value;
    if (attr === 'ruleSyntax') router.ruleSyntax = value;
    if (attr === 'service') router.service = value;
  }
  into.routers.push(...routers.values());
}

function defined(into: Routing, protocol: Protocol, provider: string): Set<string> {
  const key = `${protocol}/${provider}`;
  const set = into.services.get(key) ?? new Set<string>();
  into.services.set(key, set);
  return set;
}

/** Why a router's service reference resolves to nothing, or undefined when it resolves. */
export function undefinedService(router: Router, routing: Routing): string | undefined {
  if (router.service === undefined) {
    // The docker provider creates a service for a container that declares exactly one router.
    return router.provider === 'file' ? 'it names no service' : undefined;
  }
  const [name, provider = router.provider] = router.service.split('@') as [string, string?];
  // `api@internal` and the like are Traefik's own; other providers are not part of the bundle.
  if (provider !== 'file' && provider !== 'docker') return undefined;
  if (routing.services.get(`${router.protocol}/${provider}`)?.has(name)) return undefined;
  return `its service ${router.service} is not defined (${router.protocol}.services of the ${provider} provider)`;
}

export interface Matcher {
  name: string;
  args: number;
}

/**
 * The matchers of a rule with their argument counts: `Name(` then quoted/backticked arguments up to the
 * closing parenthesis. Operators (`&&`, `||`, `!`, grouping parentheses) need no parsing for this.
 */
export function matchersOf(rule: string): Matcher[] {
  const out: Matcher[] = [];
  const call = /([A-Za-z]+)\s*\(/g;
  for (let m = call.exec(rule); m; m = call.exec(rule)) {
    let i = m.index + m[0].length;
    let args = 0;
    for (;;) {
      while (i < rule.length && /[\s,]/.test(rule[i] as string)) i++;
      const quote = rule[i];
      if (quote !== '`' && quote !== '"' && quote !== "'") break;
      const end = rule.indexOf(quote, i + 1);
      if (end < 0) break;
      args++;
      i = end + 1;
    }
    out.push({ name: m[1] as string, args });
    call.lastIndex = i;
  }
  return out;
}

/** What Traefik v3 (default rule syntax) refuses in a router's rule, one message per matcher. */
export function ruleProblems(router: Router): string[] {
  if (!router.rule || router.ruleSyntax === 'v2') return [];
  const arity = TRAEFIK_MATCHERS[router.protocol].arity;
  return matchersOf(router.rule).flatMap(({ name, args }) => {
    const allowed = arity[name];
    if (!allowed) return [`${name}(…) is not a ${router.protocol.toUpperCase()} matcher of Traefik v3`];
    return allowed.includes(args)
      ? []
      : [
          `${name}(…) has ${args} arguments; Traefik v3 takes ${allowed.join(' or ')} (the router is dropped)`,
        ];
  });
}
