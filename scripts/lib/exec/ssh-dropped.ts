/**
 * A dropped SSH connection is the cause of whatever fails after it, at any layer (an upload step, the
 * lock's release, a wait for the engine). So the command's failure is said once as "the SSH connection to
 * HOST dropped during PHASE: <what it cut>", with the phase that was current when it dropped, instead of
 * repeating the connection in each layer's words; the JSON result names it as `dropped: { where, phase }`.
 */
import { type Failure, runContext } from '../core/run-context.ts';

/** "the SSH connection to user@host:port dropped": how every message about a drop begins. */
export function droppedPrefix(where: string): string {
  return `the SSH connection to ${where} dropped`;
}

/** Records that the connection to `where` dropped now; the first drop is the one the failure names. */
export function noteDropped(where: string, reason: string): void {
  runContext.noteDropped(where, reason);
  runContext.frameFailure(sayDropped);
}

function sayDropped(failure: Failure): Failure {
  const dropped = runContext.dropped;
  if (!dropped) return failure;
  const prefix = droppedPrefix(dropped.where);
  // Layers below said "the SSH connection to HOST dropped while ...": the prefix is said once, up front.
  const tidy = (m: string) => m.split(`${prefix} `).join('');
  const { message } = failure;
  const rest = message.startsWith(prefix) ? message.slice(prefix.length).trimStart() : message;
  return {
    ...failure,
    message: `${prefix}${dropped.phase ? ` during ${dropped.phase}` : ''}: ${tidy(rest)}`,
    secondary: failure.secondary.map(tidy),
    fields: { ...failure.fields, dropped: { where: dropped.where, phase: dropped.phase } },
  };
}
