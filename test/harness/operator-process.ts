import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../../src/operator/main.ts', import.meta.url));

export interface LogLine {
  level: string;
  message: string;
  [key: string]: unknown;
}

/** The operator as a real child process (node src/operator/main.ts), with its JSON log lines collected. */
export class OperatorProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  private child?: ChildProcess;
  private readonly args: string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly launch: { script: string; nodeArgs: string[] };
  healthPort = 0;
  metricsPort = 0;

  /** `launch` runs another entry point (e.g. the compiled dist/ one) or passes flags to node. */
  constructor(
    kubeconfig: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
    launch: { script?: string; nodeArgs?: string[] } = {},
  ) {
    this.args = ['--metrics-bind-address=127.0.0.1:0', '--health-probe-bind-address=127.0.0.1:0', ...args];
    this.env = { ...process.env, KUBECONFIG: kubeconfig, ...env };
    this.launch = { script: launch.script ?? main, nodeArgs: launch.nodeArgs ?? [] };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and waits for the log line `waitFor` (none with null). */
  async start(waitFor: string | null = 'caches synced; reconciling'): Promise<void> {
    const child = spawn(process.execPath, [...this.launch.nodeArgs, this.launch.script, ...this.args], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let buffer = '';
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const parsed = JSON.parse(line) as LogLine;
          this.logs.push(parsed);
          if (typeof parsed.healthPort === 'number') this.healthPort = parsed.healthPort;
          if (typeof parsed.metricsPort === 'number') this.metricsPort = parsed.metricsPort;
        } catch {
          this.logs.push({ level: 'raw', message: line });
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    if (waitFor !== null) await this.waitForLog((l) => l.message === waitFor, 60_000);
  }

  async waitForLog(match: (l: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.slice(from).find(match);
      if (found) return found;
      if (this.child?.exitCode !== null && this.child?.exitCode !== undefined) {
        throw new Error(
          `operator exited (${this.child.exitCode}) before the expected log line; stderr: ${this.stderr}`,
        );
      }
      if (Date.now() > deadline) throw new Error(`expected log line not seen within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Waits until the process exits by itself; its exit code (null when killed by a signal). */
  async waitForExit(timeoutMs: number): Promise<number | null> {
    const child = this.child;
    if (!child) throw new Error('the operator was not started');
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    let timer: NodeJS.Timeout | undefined;
    try {
      const [code] = (await Promise.race([
        once(child, 'exit'),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the operator did not exit within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ])) as [number | null];
      return code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The operator's /metrics, or only the metrics named (a few counters cost far less to render). */
  async metrics(names: string[] = []): Promise<string> {
    const query = names.map((n) => `name=${encodeURIComponent(n)}`).join('&');
    const url = `http://127.0.0.1:${this.metricsPort}/metrics${query ? `?${query}` : ''}`;
    try {
      return await (await fetch(url)).text();
    } catch {
      // A kept-alive connection the server closed as it was reused (ECONNRESET): one retry on a new one.
      return (await fetch(url, { headers: { connection: 'close' } })).text();
    }
  }

  /** A metric's value, summed over label sets that contain `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.metrics(), name, labels);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code] = (await exited) as [number | null];
    clearTimeout(timer);
    return code;
  }
}

/** A metric's value in a Prometheus text exposition, summed over label sets that contain `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
