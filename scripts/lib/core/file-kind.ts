import type { Stats } from 'node:fs';

/** What a stat (or a directory entry) describes, as far as telling a regular file from the rest goes. */
export type FileKindProbe = Pick<
  Stats,
  'isFile' | 'isFIFO' | 'isDirectory' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket'
>;

/**
 * What `st` is when it is not a regular file (`a FIFO`, `a directory`, …); undefined for a file. Used
 * wherever a path is refused before it is opened (opening a FIFO blocks; a device never ends): the
 * secrets file, the age keys file, the files of the bundle.
 */
export function notRegular(st: FileKindProbe): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'something other than a file';
}
