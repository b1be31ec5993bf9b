/**
 * A project script in a pseudo-terminal (python3's pty module): when its output shows `prompt`, `answer`
 * is typed and Enter pressed. What the terminal showed comes back, so a test sees whether it was echoed.
 */
import { execa } from 'execa';
import { PROJECT_ROOT } from './run-cli.ts';
import { scriptArgv } from './script-bundles.ts';

const IN_PTY = `
import os, pty, select, sys, time
prompt, answer = sys.argv[1].encode(), sys.argv[2].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[3], sys.argv[3:])
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
}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa(
    opts.python,
    [
      '-c',
      IN_PTY,
      opts.prompt,
      opts.answer,
      process.execPath,
      ...scriptArgv(opts.script, 'tsx'),
      ...opts.args,
    ],
    { cwd: PROJECT_ROOT, env: opts.env, extendEnv: false, reject: false, timeout: 90_000 },
  );
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
