/**
 * Exit codes shared by every command:
 * 0 done, 1 failed while working, 2 bad input or usage.
 */
export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

/** An error a command reports to the operator: a message, a hint with the fix, and its exit code. */
abstract class CommandError extends Error {
  abstract readonly exitCode: number;
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Bad input or usage: the operator has to fix something before anything is applied.
 * `message` names the problem, `hint` says how to fix it. Neither may hold a secret value.
 */
export class InputError extends CommandError {
  readonly exitCode = EXIT.badInput;
}

/** Something failed while working (an external command, a deadline). */
export class WorkError extends CommandError {
  readonly exitCode = EXIT.failed;
}

export function exitCodeOf(err: unknown): number {
  return err instanceof CommandError ? err.exitCode : EXIT.failed;
}
