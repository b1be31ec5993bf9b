/** bifrost unlock: show and clear the host lock a crashed run left behind. */

import { defineCommand } from '../../core/cli.ts';
import { EXIT, InputError } from '../../core/errors.ts';
import { confirm } from '../../core/prompt.ts';
import { requireHost, withHost } from '../host-flags.ts';
import { RECOVERY_OPTIONS, RECOVERY_OPTIONS_HELP, USAGE } from './common.ts';

export const summary = "show the host lock's holder and clear it (asks first on a terminal; --yes)";

export const command = defineCommand({
  name: `${USAGE} unlock`,
  synopsis: '(--host H | --local) [--yes] [options]',
  description: `Shows who holds the host lock (REMOTE-DIR.lock: user@machine, pid, since when, which command) and
clears it. Asks for confirmation on a terminal; elsewhere pass --yes. Only clear a lock whose run is
really gone: two runs at once would break each other's upload. A lock whose holder is still running on
this machine is never cleared (exit 2, even with --yes). A lock left by a run of the same machine whose
process has ended, or one that never recorded its holder, needs no unlock: the next run takes it over.`,
  options: RECOVERY_OPTIONS,
  optionsHelp: `  -y, --yes            clear without asking
  --dry-run            show the holder; clear nothing
${RECOVERY_OPTIONS_HELP}`,
  footer: 'just: bifrost-unlock HOST [--yes]',
  exits: { ok: 'cleared (or there was no lock)', badInput: 'bad input or not confirmed' },
  async run(flags, _positionals, out) {
    const { cli, host } = requireHost(flags, `${USAGE} unlock`);
    const { breakHostLock, describeHolder, holderState, readHostLock } = await import('../lock.ts');
    return withHost({ ...flags, host }, out, cli, async (executor) => {
      const holder = await readHostLock(executor, cli.dir);
      if (!holder) {
        out.info(out.color.green(`no lock on ${executor.where}:${cli.dir}; nothing to clear`));
        out.result({ ok: true, where: executor.where, dir: cli.dir, locked: false });
        return EXIT.ok;
      }
      out.data(`${cli.dir}.lock is held by ${describeHolder(holder)}`);
      if (flags['dry-run']) {
        out.info('dry run: the lock stays');
        out.result({ ok: true, dryRun: true, where: executor.where, dir: cli.dir, locked: true, holder });
        return EXIT.ok;
      }
      // Its run is alive here, so clearing it would let a second run overlap it, --yes or not.
      if (holderState(holder).state === 'alive') {
        throw new InputError(
          `not clearing the lock: its holder, pid ${holder.pid} (${holder.command}), is running on this machine`,
          `wait for it to finish, or stop it (Ctrl-C where it runs, or kill ${holder.pid}): it releases the lock itself`,
        );
      }
      if (!flags.yes) {
        if (!process.stdin.isTTY || !process.stderr.isTTY) {
          throw new InputError(
            'not clearing the lock without confirmation',
            'make sure that run is gone (it may still be uploading), then pass --yes',
          );
        }
        if (!(await confirm(`Clear it? Only if that run is no longer running. [y/N] `))) {
          out.info('left in place');
          out.result({
            ok: false,
            where: executor.where,
            dir: cli.dir,
            locked: true,
            holder,
            cleared: false,
          });
          return EXIT.badInput;
        }
      }
      const broken = await breakHostLock(executor, cli.dir);
      if (!broken) {
        out.info('the lock was released in the meantime; nothing to clear');
      } else {
        const same =
          broken.holder === holder.holder && broken.pid === holder.pid && broken.since === holder.since;
        // breakHostLock reads the holder again: another run may have taken the lock between the two reads.
        if (!same)
          out.warn(
            `the lock changed hands before it was cleared; cleared ${broken.holder} (pid ${broken.pid})`,
          );
        out.info(out.color.green(`cleared the lock held by ${broken.holder} (pid ${broken.pid})`));
      }
      out.result({
        ok: true,
        where: executor.where,
        dir: cli.dir,
        locked: false,
        holder: broken ?? holder,
        cleared: Boolean(broken),
      });
      return EXIT.ok;
    });
  },
});
