/**
 * A project script in a pseudo-terminal (python3's pty module): when its output shows `prompt`, `answer`
 * is typed and Enter pressed. What the terminal showed comes back, so a test sees whether it was echoed.
 * With `stdoutFile`, the script's stdout goes to that file instead (a terminal on stdin and stderr only,
 * as in `cmd > log` typed at a terminal).
 */
import { execa } from 'execa';
import { PROJECT_ROOT } from './run-cli.ts';
import { scriptArgv } from './script-bundles.ts';

const IN_PTY = `
import os, pty, select, sys, time
prompt, answer, stdout_file = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    if stdout_file:
        os.dup2(os.open(stdout_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.execvp(sys.argv[4], sys.argv[4:])
out, sent, deadline = b"", False, time.time() + 60
while time.time() < deadline:
    if select.select([fd], [], [], 0.2)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not sent and prompt in out:
        os.write(fd, answer + b"\\r")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
`;

export async function runScriptInPty(opts: {
  python: string;
  prompt: string;
  answer: string;
  script: string;
  args: readonly string[];
  env: Record<string, string>;
  stdoutFile?: string;
}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa(
    opts.python,
    [
      '-c',
      IN_PTY,
      opts.prompt,
      opts.answer,
      opts.stdoutFile ?? '',
      process.execPath,
      ...scriptArgv(opts.script, 'tsx'),
      ...opts.args,
    ],
    { cwd: PROJECT_ROOT, env: opts.env, extendEnv: false, reject: false, timeout: 90_000 },
  );
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
