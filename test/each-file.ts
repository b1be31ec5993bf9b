/**
 * Runs at the start of every test file (vitest.config.ts setupFiles). With isolate: false a worker keeps
 * one module graph for all its files, so per-file hooks live here rather than in a helper's module body.
 * Each file begins a run of its own, as a CLI does: a secret one file registered, or an interrupt it
 * sent, is not what another file's code sees.
 */
import { afterAll, beforeAll } from 'vitest';
import { beginRun } from '../scripts/lib/core/run-context.ts';
import { removeTempDirs } from './helpers/temp.ts';

beforeAll(() => void beginRun());
afterAll(removeTempDirs);
