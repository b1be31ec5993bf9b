import { fitsInt64, type GoTime, parseYamlTimestamp } from './go-values.ts';

/**
 * go-yaml v3's `resolve()` for an untagged plain scalar, which is how sops types unencrypted
 * YAML values (and so how it hashes them into the MAC). It differs from the YAML 1.2 core schema
 * of the `yaml` package: `0755` is octal, `1_000` is an int, `2024-01-01` is a timestamp,
 * `yes`/`on` stay strings.
 */
export type Resolved =
  | { kind: 'str'; value: string }
  | { kind: 'null'; value: null }
  | { kind: 'bool'; value: boolean }
  | { kind: 'int'; value: bigint }
  /** Above int64: go-yaml gives a uint64, which sops cannot walk. */
  | { kind: 'uint64'; value: bigint }
  | { kind: 'float'; value: number }
  | { kind: 'time'; value: GoTime };

const MAP: Record<string, Resolved> = {};
for (const s of ['true', 'True', 'TRUE']) MAP[s] = { kind: 'bool', value: true };
for (const s of ['false', 'False', 'FALSE']) MAP[s] = { kind: 'bool', value: false };
for (const s of ['', '~', 'null', 'Null', 'NULL']) MAP[s] = { kind: 'null', value: null };
for (const s of ['.nan', '.NaN', '.NAN']) MAP[s] = { kind: 'float', value: Number.NaN };
for (const s of ['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'])
  MAP[s] = { kind: 'float', value: Infinity };
for (const s of ['-.inf', '-.Inf', '-.INF']) MAP[s] = { kind: 'float', value: -Infinity };

const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

/** `strconv.ParseInt(s, 0, 64)` then `ParseUint(s, 0, 64)`: sign, 0x/0o/0b or leading-0 octal. */
function parseGoIntBase0(s: string): Resolved | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const [, sign, body = ''] = m;
  let magnitude: bigint;
  if (/^0[oO]/.test(body)) magnitude = BigInt(`0o${body.slice(2)}`);
  else if (/^0[xXbB]/.test(body)) magnitude = BigInt(body.toLowerCase());
  else if (body.length > 1 && body.startsWith('0')) magnitude = BigInt(`0o${body.slice(1)}`);
  else magnitude = BigInt(body);
  const value = sign === '-' ? -magnitude : magnitude;
  if (fitsInt64(value)) return { kind: 'int', value };
  // ParseUint takes no sign, so only an unsigned literal up to 2^64-1 gets here.
  if (sign === '' && value < 2n ** 64n) return { kind: 'uint64', value };
  return undefined;
}

function parseFloatOrUndefined(s: string): Resolved | undefined {
  const value = Number(s);
  // strconv.ParseFloat reports overflow as an error, so go-yaml keeps such a scalar a string.
  return Number.isFinite(value) ? { kind: 'float', value } : undefined;
}

export function resolvePlain(s: string): Resolved {
  const first = s[0];
  const mapped = MAP[s];
  if (mapped) return mapped;
  if (first === '.') {
    return (/^\.[0-9]+([eE][-+]?[0-9]+)?$/.test(s) && parseFloatOrUndefined(s)) || { kind: 'str', value: s };
  }
  if (first !== undefined && /[-+0-9]/.test(first)) {
    const time = parseYamlTimestamp(s);
    if (time) return { kind: 'time', value: time };
    const plain = s.replaceAll('_', '');
    const int = parseGoIntBase0(plain);
    if (int) return int;
    if (YAML_STYLE_FLOAT.test(plain)) {
      const float = parseFloatOrUndefined(plain);
      if (float) return float;
    }
  }
  return { kind: 'str', value: s };
}
