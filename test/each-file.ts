/**
 * Runs at the start of every test file (vitest.config.ts setupFiles). With isolate: false a worker keeps
 * one module graph for all its files, so per-file hooks live here rather than in a helper's module body.
 */
import { afterAll, beforeAll } from 'vitest';
import { freshProcessState } from './helpers/fresh-process-state.ts';
import { removeTempDirs } from './helpers/temp.ts';

beforeAll(freshProcessState);
afterAll(removeTempDirs);
