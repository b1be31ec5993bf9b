// Loaded with `node --import` into a benchmarked process: on exit, appends its peak resident set size
// (kilobytes) to $BENCH_RSS_FILE, so the bench can report peak memory without /usr/bin/time.
import { appendFileSync } from 'node:fs';

process.on('exit', () => {
  if (process.env.BENCH_RSS_FILE)
    appendFileSync(process.env.BENCH_RSS_FILE, `${process.resourceUsage().maxRSS}\n`);
});
