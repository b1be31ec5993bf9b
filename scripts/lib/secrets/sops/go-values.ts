/**
 * The exact text forms Go's strconv and time packages give values. The MAC hashes values in
 * these forms and `exec-env` prints them, so a JS default (`String(1e21)` is `1e+21`) would make
 * the MAC differ from the one sops computed.
 */

/** A YAML timestamp or a `type:time` value, kept as the texts Go would print. */
export class GoTime {
  constructor(
    /** `time.MarshalText` (RFC 3339 with nanoseconds, trailing zeros dropped): the MAC form. */
    readonly nano: string,
    /** `Format(time.RFC3339)`: no fraction; what `exec-env` prints. */
    readonly seconds: string,
  ) {}
}

/** Shortest round-trip digits of a finite, non-zero number and its decimal point position. */
function shortestDigits(x: number): { neg: boolean; digits: string; dp: number } {
  // toExponential() without an argument gives the shortest digits that round-trip, as Go's
  // FormatFloat(-1) does.
  const [mantissa = '', exponent = '0'] = x.toExponential().split('e');
  const neg = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  return { neg, digits, dp: Number(exponent) + 1 };
}

function special(x: number): string | undefined {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Number.POSITIVE_INFINITY) return '+Inf';
  if (x === Number.NEGATIVE_INFINITY) return '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  return undefined;
}

/** `strconv.FormatFloat(x, 'f', -1, 64)`: shortest digits, never an exponent. */
export function formatFloatF(x: number): string {
  const s = special(x);
  if (s !== undefined) return s;
  const { neg, digits, dp } = shortestDigits(x);
  let out: string;
  if (dp <= 0) out = `0.${'0'.repeat(-dp)}${digits}`;
  else if (dp >= digits.length) out = digits + '0'.repeat(dp - digits.length);
  else out = `${digits.slice(0, dp)}.${digits.slice(dp)}`;
  return neg ? `-${out}` : out;
}

/** `strconv.FormatFloat(x, 'G', -1, 64)`: exponent form when the exponent is < -4 or >= 6. */
export function formatFloatG(x: number): string {
  const s = special(x);
  if (s !== undefined) return s;
  const { neg, digits, dp } = shortestDigits(x);
  const exp = dp - 1;
  let out: string;
  if (exp < -4 || exp >= 6) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    out = `${mantissa}E${exp < 0 ? '-' : '+'}${e < 10 ? `0${e}` : e}`;
  } else {
    out = formatFloatF(Math.abs(x));
  }
  return neg ? `-${out}` : out;
}

/** `strconv.ParseFloat(s, 64)` for the decimal forms sops writes, plus Go's inf/nan spellings. */
export function parseGoFloat(s: string): number | undefined {
  if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(s)) return Number.NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  const x = Number(s);
  // Go reports overflow (ErrRange) instead of returning an infinity.
  return Number.isFinite(x) ? x : undefined;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export function fitsInt64(n: bigint): boolean {
  return n >= INT64_MIN && n <= INT64_MAX;
}

/** `strconv.Atoi` on a 64-bit platform: optional sign, decimal digits, int64 range. */
export function parseGoInt(s: string): bigint | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = BigInt(s);
  return fitsInt64(n) ? n : undefined;
}

/** `strconv.ParseBool`. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

function daysIn(month: number, year: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

interface TimeFields {
  year: string;
  month: string;
  day: string;
  hour?: string;
  minute?: string;
  second?: string;
  fraction?: string;
  zone?: string;
}

function buildTime(f: TimeFields): GoTime | undefined {
  const year = Number(f.year);
  const month = Number(f.month);
  const day = Number(f.day);
  const hour = Number(f.hour ?? 0);
  const minute = Number(f.minute ?? 0);
  const second = Number(f.second ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(month, year)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  // Go keeps nanoseconds: digits past the ninth are dropped, trailing zeros are not printed.
  const fraction = (f.fraction ?? '').slice(0, 9).replace(/0+$/, '');
  const zone = !f.zone || /^[+-]00:00$/.test(f.zone) ? 'Z' : f.zone;
  const seconds = `${f.year}-${pad2(month)}-${pad2(day)}T${pad2(hour)}:${pad2(minute)}:${pad2(second)}`;
  return new GoTime(`${seconds}${fraction ? `.${fraction}` : ''}${zone}`, `${seconds}${zone}`);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/** `time.Parse(time.RFC3339, s)` (also what `time.UnmarshalText` accepts). */
export function parseRfc3339(s: string): GoTime | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, year = '', month = '', day = '', hour, minute, second, fraction, zone] = m;
  return buildTime({ year, month, day, hour, minute, second, fraction, zone });
}

// go-yaml v3 tries these layouts in order: "2006-1-2T15:4:5.999999999Z07:00" (also with a
// lower-case t), "2006-1-2 15:4:5.999999999" (UTC) and "2006-1-2".
const YAML_TIMESTAMP =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})| (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?)?$/;

/** go-yaml v3 `parseTimestamp`, for unquoted YAML scalars. */
export function parseYamlTimestamp(s: string): GoTime | undefined {
  const m = YAML_TIMESTAMP.exec(s);
  if (!m) return undefined;
  const [, year = '', month = '', day = '', h1, mi1, s1, f1, zone, h2, mi2, s2, f2] = m;
  return buildTime({
    year,
    month,
    day,
    hour: h1 ?? h2,
    minute: mi1 ?? mi2,
    second: s1 ?? s2,
    fraction: f1 ?? f2,
    zone,
  });
}
