/**
 * What the e2e tests read from a container, whatever starts it (unshare or runc):
 * its stdout, the app's stderr lines, and stasis's JSON log events on the same stderr.
 */
import type { ChildProcess } from 'node:child_process';
import { poll, type LogEvent } from './stasis.js';

export interface CapturedResult {
  readonly code: number | null;
  readonly stdout: string[];
  /** the app's stderr lines (stasis's JSON log lines, and any runtime lines, removed) */
  readonly stderr: string[];
  readonly events: LogEvent[];
  readonly raw: string;
}

function completeLines(text: string): string[] {
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').slice(0, -1);
}

export class Captured {
  readonly done: Promise<CapturedResult>;
  private out = '';
  private err = '';

  /**
   * @param name how failures name the container
   * @param waitMs the default for the waits (runc containers start slower)
   * @param foreign stderr lines that are neither the app's nor stasis's (runc's own log lines)
   */
  constructor(
    readonly child: ChildProcess,
    private readonly name: string,
    private readonly waitMs: number,
    private readonly foreign: (line: string) => boolean = () => false,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.err += chunk.toString()));
    this.done = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout: this.stdout(), stderr: this.appStderr(), events: this.events(), raw: this.err }));
    });
    this.done.catch(() => {});
  }

  stdout(): string[] {
    return completeLines(this.out);
  }

  appStderr(): string[] {
    return completeLines(this.err).filter((line) => !line.startsWith('{') && !this.foreign(line));
  }

  events(): LogEvent[] {
    return completeLines(this.err)
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogEvent);
  }

  event(msg: string): LogEvent | undefined {
    return this.events().find((event) => event.msg === msg);
  }

  /** The last lines of both streams, for failure messages. */
  protected tail(): string {
    return `stdout ${JSON.stringify(this.stdout().slice(-3))}; stderr ${this.err.slice(-3000)}`;
  }

  async waitForStdout(predicate: (lines: string[]) => boolean, what: string, ms = this.waitMs): Promise<void> {
    await poll(`${what} in ${this.name}; ${this.tail()}`, () => (predicate(this.stdout()) ? true : undefined), ms);
  }

  async waitForEvent(msg: string, ms = this.waitMs): Promise<LogEvent> {
    return poll(`log event "${msg}" in ${this.name}; ${this.tail()}`, () => this.event(msg), ms);
  }

  /** `done`, but fails after `ms` with the last lines instead of waiting for ever (e.g. when a dump failed). */
  async finished(ms = 120_000): Promise<CapturedResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} still running after ${ms} ms; ${this.tail()}`)), ms);
    });
    try {
      return await Promise.race([this.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
