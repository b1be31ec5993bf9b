/**
 * A dropped SSH connection is said by the SSH layer (exec/ssh-dropped.ts), not by the CLI core: once
 * noted, the command's failure reads "the SSH connection to HOST dropped during PHASE: <what it cut>",
 * with the phase current when it dropped, each layer's own mention of the drop folded into that one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { beginRun, runContext } from '../../scripts/lib/core/run-context.ts';
import { droppedPrefix, noteDropped } from '../../scripts/lib/exec/ssh-dropped.ts';

afterEach(() => {
  beginRun();
});

const WHERE = 'deploy@10.0.0.5:22';
const PREFIX = droppedPrefix(WHERE);

describe('a dropped SSH connection', () => {
  it('is said once, up front, with the phase it cut; the JSON result names it', () => {
    expect(PREFIX).toBe('the SSH connection to deploy@10.0.0.5:22 dropped');
    runContext.setPhase('upload');
    noteDropped(WHERE, 'read ECONNRESET');
    // The phase moves on while the failure unwinds; a second connection drops too: the first drop is said.
    runContext.setPhase('releasing the host lock');
    noteDropped('root@jump:22', 'the server closed it');
    const said = runContext.framed({
      message: `upload step "move into place": ${PREFIX} while running mv: read ECONNRESET`,
      secondary: [`cannot read the host lock: ${PREFIX} while running cat: read ECONNRESET`],
      hint: 're-run to converge',
    });
    expect(said).toEqual({
      message: `${PREFIX} during upload: upload step "move into place": while running mv: read ECONNRESET`,
      secondary: ['cannot read the host lock: while running cat: read ECONNRESET'],
      hint: 're-run to converge',
      fields: { dropped: { where: WHERE, phase: 'upload' } },
    });
  });

  it('a message that begins with the drop is not said twice', () => {
    runContext.setPhase('bootstrap');
    noteDropped(WHERE, 'read ECONNRESET');
    const said = runContext.framed({ message: `${PREFIX} while running docker: gone`, secondary: [] });
    expect(said.message).toBe(`${PREFIX} during bootstrap: while running docker: gone`);
  });
});
