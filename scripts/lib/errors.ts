/**
 * Exit codes shared by every command (DESIGN.md "CLI conventions"):
 * 0 done, 1 failed while working, 2 bad input or usage.
 */
export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

/**
 * Bad input or usage: the operator has to fix something before anything is applied.
 * `message` names the problem, `hint` says how to fix it. Neither may hold a secret value.
 */
export class InputError extends Error {
  readonly exitCode = EXIT.badInput;
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'InputError';
  }
}

/** Something failed while working (an external command, a deadline). */
export class WorkError extends Error {
  readonly exitCode = EXIT.failed;
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'WorkError';
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof InputError || err instanceof WorkError) return err.exitCode;
  return EXIT.failed;
}
