/**
 * Registering secrets with the Redactor, then the first redaction (which sorts the forms): 1,000 values
 * against 10,000. Linear registration gives a ratio near 10 (a little more: the garbage collector has
 * ten times the forms to walk); the former redactor, which looked for each new form among all the
 * others and sorted them all again at each registration, took 0.6 s for 1,000, 19 s for 4,000 and
 * minutes for 10,000. Goal: a ratio ≤ 15. Prints figures; never asserts.
 */
import { randomBytes } from 'node:crypto';
import { Redactor } from '../scripts/lib/core/redactor.ts';
import { median } from './median.ts';

function registerThenRedact(values: readonly string[]): number {
  const t0 = performance.now();
  const r = new Redactor();
  for (const [i, value] of values.entries()) r.register(value, `KEY_${i}`);
  r.redact('one line of output');
  return performance.now() - t0;
}

export function benchRedactor(): void {
  const values = Array.from({ length: 10_000 }, () => randomBytes(18).toString('base64'));
  const small = values.slice(0, 1_000);
  registerThenRedact(values); // JIT warm-up
  // Interleaved, so that a busy moment of the machine falls on both sizes alike.
  const ones: number[] = [];
  const tens: number[] = [];
  for (let round = 0; round < 5; round++) {
    ones.push(registerThenRedact(small));
    tens.push(registerThenRedact(values));
  }
  const one = median(ones);
  const ten = median(tens);
  const line = (name: string, value: string) => console.log(`${name.padEnd(52)} ${value}`);
  line('redactor: register 1,000 values, median of 5', `${one.toFixed(1).padStart(8)} ms`);
  line('redactor: register 10,000 values, median of 5', `${ten.toFixed(1).padStart(8)} ms`);
  const ratio = ten / one;
  line(
    'redactor: 10,000 / 1,000 (linear: 10)',
    `${ratio.toFixed(1).padStart(8)}    goal   15       ratio ${(ratio / 15).toFixed(2)}  ${ratio <= 15 ? 'meets goal' : 'MISSES goal'}`,
  );
}
