/**
 * Traefik's ACME certificate resolvers in its static config: each has an account email Let's Encrypt
 * accepts (without one Traefik registers a new account at every start), and its DNS challenge uses the
 * `propagation` block rather than the keys deprecated in v3.3. The facts are TRAEFIK_ACME (pinned-images.ts).
 */
import { TRAEFIK_ACME } from './pinned-images.ts';

export interface AcmeFinding {
  /** The YAML path of the key the finding is about (for its line). */
  path: (string | number)[];
  problem: string;
  fix: string;
}

type Node = Record<string, unknown>;

const isMap = (v: unknown): v is Node => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

/** The entry of `node` whose key is `key` without regard to case (as written, for the line). */
function entry(node: Node, key: string): [string, unknown] | undefined {
  return Object.entries(node).find(([k]) => k.toLowerCase() === key.toLowerCase());
}

/** An address Let's Encrypt takes: local@domain, with a public-looking domain it does not refuse. */
function emailProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.trim() === '')
    return "has no account email: Traefik registers a new ACME account at every start without one, until Let's Encrypt's rate limit refuses it";
  const refused = "Let's Encrypt refuses to register the account, so no certificate is issued";
  const m = /^[^\s@<>()[\],;:"]+@((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+([a-z]{2,63}))$/i.exec(value);
  if (!m) return `has an account email that is not an address (${JSON.stringify(value)}): ${refused}`;
  const domain = (m[1] as string).toLowerCase();
  const tld = (m[2] as string).toLowerCase();
  if (TRAEFIK_ACME.refusedDomains.includes(domain))
    return `has an account email at ${domain}, an example domain: ${refused}`;
  if (TRAEFIK_ACME.reservedTlds.includes(tld))
    return `has an account email at ${domain}, which is not a public domain (.${tld} is reserved): ${refused}`;
  return undefined;
}

/** The findings of one static config (parsed YAML). */
export function acmeFindings(doc: unknown): AcmeFinding[] {
  const findings: AcmeFinding[] = [];
  if (!isMap(doc)) return findings;
  const [resolversKey, resolvers] = entry(doc, 'certificatesResolvers') ?? [];
  if (!resolversKey || !isMap(resolvers)) return findings;
  for (const [name, resolver] of Object.entries(resolvers)) {
    if (!isMap(resolver)) continue;
    const [acmeKey, acme] = entry(resolver, 'acme') ?? [];
    if (!acmeKey || !isMap(acme)) continue;
    const at = [resolversKey, name, acmeKey];
    const [emailKey, email] = entry(acme, 'email') ?? [];
    const bad = emailProblem(email);
    if (bad) {
      findings.push({
        path: emailKey ? [...at, emailKey] : at,
        problem: `certificate resolver ${name} ${bad}`,
        fix: `set ${name}.acme.email to an address you read (${TRAEFIK_ACME.emailSource}; refused domains: ${TRAEFIK_ACME.refusedDomainsSource})`,
      });
    }
    const [dnsKey, dns] = entry(acme, 'dnsChallenge') ?? [];
    if (!dnsKey || !isMap(dns)) continue;
    for (const key of Object.keys(dns)) {
      const replacement = TRAEFIK_ACME.deprecated[key.toLowerCase()];
      if (!replacement) continue;
      findings.push({
        path: [...at, dnsKey, key],
        problem: `certificate resolver ${name}: dnsChallenge.${key} is deprecated since Traefik v3.3 (a warning at every start)`,
        fix: `use dnsChallenge.${replacement} instead (${TRAEFIK_ACME.deprecationSource})`,
      });
    }
    const [propKey, propagation] = entry(dns, 'propagation') ?? [];
    if (!propKey || !isMap(propagation)) continue;
    for (const key of Object.keys(propagation)) {
      if (TRAEFIK_ACME.propagationKeys.some((k) => k.toLowerCase() === key.toLowerCase())) continue;
      findings.push({
        path: [...at, dnsKey, propKey, key],
        problem: `certificate resolver ${name}: dnsChallenge.propagation.${key} is not a propagation setting of Traefik ${TRAEFIK_ACME.tag}`,
        fix: `use one of ${TRAEFIK_ACME.propagationKeys.join(', ')} (${TRAEFIK_ACME.deprecationSource})`,
      });
    }
  }
  return findings;
}
