/** The apps table's refusals as `where: message` lines, for the runtime tier's tests. */
import { expect } from 'vitest';
import { AppsTableError, resolveAppsTable } from '../../scripts/lib/runtime/apps.ts';
import { renderBackend } from '../../scripts/lib/runtime/render.ts';
import type { BackendId } from '../../scripts/lib/secrets/backend-id.ts';

function problemsOf(run: () => unknown, what: string): string[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AppsTableError);
    return (err as AppsTableError).problems.map((p) => `${p.where}: ${p.message}`);
  }
  throw new Error(`expected ${what}`);
}

/** What the loader refuses in a parsed table. */
export const tableProblems = (table: unknown): string[] =>
  problemsOf(() => resolveAppsTable(table, 'apps.yaml'), 'the table to be refused');

/** What a backend refuses in a table the loader accepts. */
export const backendRefusals = (table: unknown, backend: BackendId): string[] =>
  problemsOf(
    () =>
      renderBackend(resolveAppsTable(table, 'apps.yaml'), backend, {
        script: 'test.ts',
        source: 'apps.yaml',
      }),
    `backend ${backend} to refuse the table`,
  );
