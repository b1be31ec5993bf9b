import { execa } from 'execa';
import type { Command, CommandResult, Executor } from './executor.ts';

/** Runs commands on this machine with execa: argv arrays, never a shell. */
export class LocalExecutor implements Executor {
  readonly where = 'local';

  async run(cmd: Command): Promise<CommandResult> {
    const [file, ...args] = cmd.argv;
    if (!file) throw new Error('empty command');
    const result = await execa(file, args, {
      input: cmd.input ?? '',
      env: cmd.env ? { ...cmd.env } : undefined,
      reject: false,
      timeout: cmd.timeoutMs,
      stripFinalNewline: false,
    });
    const spawnFailed = result.exitCode === undefined && !result.timedOut;
    return {
      exitCode: result.exitCode ?? 1,
      stdout: String(result.stdout ?? ''),
      stderr: String(result.stderr ?? ''),
      timedOut: Boolean(result.timedOut),
      spawnError: spawnFailed ? (result.originalMessage ?? result.shortMessage) : undefined,
    };
  }
}
