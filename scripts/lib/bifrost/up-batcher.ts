import type { CommandResult } from '../exec/executor.ts';

/**
 * Steps that become ready together (traefik and postgres; server and worker; the NetBird followers)
 * share one `compose up` call: each docker CLI call costs about 0.1 s, and those add up on the
 * critical path. Requests arriving within a short window are grouped by whether they force a recreate.
 */
export class UpBatcher {
  private queue: {
    service: string;
    recreate: boolean;
    resolve: (r: CommandResult) => void;
    reject: (e: Error) => void;
  }[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly send: (services: string[], recreate: boolean) => Promise<CommandResult>,
    private readonly windowMs = 10,
  ) {}

  request(service: string, recreate: boolean): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ service, recreate, resolve, reject });
      this.timer ??= setTimeout(() => this.flush(), this.windowMs);
    });
  }

  private flush(): void {
    this.timer = undefined;
    const batch = this.queue.splice(0);
    for (const recreate of [false, true]) {
      const group = batch.filter((r) => r.recreate === recreate);
      if (group.length === 0) continue;
      this.send(
        group.map((r) => r.service),
        recreate,
      ).then(
        (result) => {
          for (const r of group) r.resolve(result);
        },
        (err: Error) => {
          for (const r of group) r.reject(err);
        },
      );
    }
  }
}
