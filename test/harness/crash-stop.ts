/**
 * What a harness started and must stop if the test worker dies before stop() (an uncaught error, the
 * worker torn down, SIGTERM or SIGINT): the hooks are installed while anything is live and run the
 * harness's synchronous stop on each, since an exit hook cannot wait. A signal is raised again after, so
 * the process still dies of the signal it was sent.
 */
export class CrashStops<T> {
  private readonly live = new Set<T>();

  constructor(private readonly stopNow: (item: T) => void) {}

  add(item: T): void {
    this.live.add(item);
    if (this.live.size === 1) this.install();
  }

  /** Forgets an item stopped the normal way; true when it was live. */
  delete(item: T): boolean {
    const had = this.live.delete(item);
    if (had && this.live.size === 0) this.uninstall();
    return had;
  }

  private readonly stopAll = (): void => {
    for (const item of this.live) this.stopNow(item);
    this.live.clear();
    this.uninstall();
  };

  private readonly onSigterm = () => this.raise('SIGTERM');
  private readonly onSigint = () => this.raise('SIGINT');

  private raise(sig: NodeJS.Signals): void {
    this.stopAll();
    process.kill(process.pid, sig);
  }

  private install(): void {
    process.on('exit', this.stopAll);
    process.on('SIGTERM', this.onSigterm);
    process.on('SIGINT', this.onSigint);
  }

  private uninstall(): void {
    process.off('exit', this.stopAll);
    process.off('SIGTERM', this.onSigterm);
    process.off('SIGINT', this.onSigint);
  }
}
