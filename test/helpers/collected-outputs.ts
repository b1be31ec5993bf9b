/**
 * The outputs of a test file's script runs, kept for a leak check at the end of the file. A check that
 * loops over what earlier tests collected passes on nothing when nothing was collected (the check run
 * alone with `-t`, or a collector that stopped collecting), so `read` first asserts it holds what it
 * should: every collector contributed, every test that passed before the check contributed, and no
 * run's output is empty.
 */
import { expect, type RunnerTestCase as Test } from 'vitest';
import { getCurrentTest } from 'vitest/suite';

interface Run {
  collector: string;
  /** The test that ran it; undefined for a beforeAll's runs. */
  test: Test | undefined;
  stdout: string;
  stderr: string;
}

export class CollectedOutputs {
  private readonly runs: Run[] = [];
  private readonly collectors = new Set<string>();

  /** A named way in: each collector must contribute by the time the check runs after the whole file. */
  collector(name: string): (run: { stdout: string; stderr: string }) => void {
    this.collectors.add(name);
    return ({ stdout, stderr }) => {
      this.runs.push({ collector: name, test: getCurrentTest(), stdout, stderr });
    };
  }

  /**
   * Every collected output, after asserting it is what the check (`check`, its own test) should read.
   * Run alone, or with the tests before it filtered out, it fails saying so instead of passing on nothing.
   */
  read(check: Test): string[] {
    const others = testsOf(check.file).filter((t) => t !== check && t.mode !== 'todo');
    const ran = others.filter((t) => t.result?.state === 'pass');
    expect(
      ran.length,
      'this check reads the outputs of the tests before it in this file, and none of them ran: run the whole file (not this test alone with -t)',
    ).toBeGreaterThan(0);
    const contributed = new Set(this.runs.map((r) => r.test));
    expect(
      ran.filter((t) => !contributed.has(t)).map((t) => t.name),
      'tests that passed without collecting the outputs of their runs for this check',
    ).toEqual([]);
    if (others.every((t) => t.mode !== 'skip')) {
      const used = new Set(this.runs.map((r) => r.collector));
      expect(
        [...this.collectors].filter((c) => !used.has(c)),
        'collectors that collected nothing over the whole file',
      ).toEqual([]);
    }
    expect(
      this.runs
        .filter((r) => r.stdout === '' && r.stderr === '')
        .map((r) => `${r.collector} in ${r.test?.name ?? 'the set-up'}`),
      'runs that printed nothing at all',
    ).toEqual([]);
    return this.runs.flatMap((r) => [r.stdout, r.stderr]);
  }
}

function testsOf(suite: { tasks: readonly unknown[] }): Test[] {
  return (suite.tasks as { type: string; tasks?: unknown[] }[]).flatMap((t) =>
    t.type === 'test' ? [t as unknown as Test] : t.tasks ? testsOf(t as { tasks: unknown[] }) : [],
  );
}
