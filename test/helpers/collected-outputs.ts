/**
 * The outputs of a test file's script runs, kept for a leak check at the end of the file. A check that
 * loops over what earlier tests collected passes on nothing when nothing was collected (the check run
 * alone with `-t`, or a collector that stopped collecting), so `read` first asserts it holds what it
 * should: every collector contributed, every test that passed before the check contributed, and no
 * run's output is empty.
 */
import type { RunnerTestCase as Test } from 'vitest';
import { expect } from 'vitest';

interface Run {
  collector: string;
  test: string;
  stdout: string;
  stderr: string;
}

/** What a beforeAll's runs are recorded under. */
const SET_UP = '(set-up)';

export class CollectedOutputs {
  private readonly runs: Run[] = [];
  private readonly collectors = new Set<string>();

  /** A named way in: each collector must contribute by the time the check runs after the whole file. */
  collector(name: string): (run: { stdout: string; stderr: string }) => void {
    this.collectors.add(name);
    return ({ stdout, stderr }) => {
      this.runs.push({ collector: name, test: expect.getState().currentTestName ?? SET_UP, stdout, stderr });
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
      ran.map(testName).filter((name) => !contributed.has(name)),
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
      this.runs.filter((r) => r.stdout === '' && r.stderr === '').map((r) => `${r.collector} in ${r.test}`),
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

/** As vitest names the running test (expect.getState().currentTestName): its suites' names and its own. */
function testName(test: Test): string {
  const names = [test.name];
  for (let s = test.suite; s && s !== (test.file as unknown); s = s.suite) if (s.name) names.unshift(s.name);
  return names.join(' > ');
}
