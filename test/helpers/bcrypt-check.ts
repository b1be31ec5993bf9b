/**
 * bcrypt checked by an implementation other than the product's (bcryptjs): the system's libcrypt
 * (libxcrypt, which reads $2b$ hashes) through perl's crypt(), both in Debian's essential set. The password
 * goes on stdin, never in an argument.
 */
import { execFileSync } from 'node:child_process';

const SCRIPT =
  'local $/; my $p = <STDIN>; my $h = $ARGV[0]; print((crypt($p, $h) // "") eq $h ? "match" : "no match")';

/** True when libcrypt says `hash` is the bcrypt hash of `password`. */
export function libcryptVerifies(password: string, hash: string): boolean {
  const out = execFileSync('perl', ['-e', SCRIPT, hash], { input: password, encoding: 'utf8' });
  return out === 'match';
}

/** The cost a bcrypt hash records ($2b$NN$…), or undefined when it is none. */
export function bcryptCost(hash: string): number | undefined {
  const m = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/.exec(hash);
  return m ? Number(m[1]) : undefined;
}
