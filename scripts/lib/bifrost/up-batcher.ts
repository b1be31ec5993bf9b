import type { CommandResult } from '../exec/executor.ts';

/**
 * Steps that become ready together (traefik and postgres; server and worker; the NetBird followers)
 * share one `compose up` call: each docker CLI call costs about 0.1 s, and those add up on the
 * critical path. The scheduler announces how many requests a pass will make (`expect`); the batch is
 * sent as soon as all of them arrived (or one was withdrawn), grouped by whether they force a recreate.
 */
export class UpBatcher {
  private queue: {
    service: string;
    recreate: boolean;
    resolve: (r: CommandResult) => void;
    reject: (e: Error) => void;
  }[] = [];
  private expected = 0;

  constructor(private readonly send: (services: string[], recreate: boolean) => Promise<CommandResult>) {}

  /** `n` more requests are on their way. */
  expect(n: number): void {
    this.expected += n;
  }

  /** An expected request will not come (its step failed or was skipped before asking). */
  withdraw(): void {
    this.expected = Math.max(0, this.expected - 1);
    if (this.expected === 0) this.flush();
  }

  request(service: string, recreate: boolean): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ service, recreate, resolve, reject });
      this.expected = Math.max(0, this.expected - 1);
      if (this.expected === 0) this.flush();
    });
  }

  private flush(): void {
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
