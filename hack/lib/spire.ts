// A local SPIRE deployment for the Workload API interop tests and the bench: spire-server on 127.0.0.1
// (its API on a unix socket), one spire-agent attested with a join token, its Workload API on a unix socket
// in a temporary directory, and registration entries for processes by uid (unix workload attestor).
// Config keys are SPIRE v1.13's (doc/spire_server.md, doc/spire_agent.md, conf/*/ of the release).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, terminate } from './control-plane.ts';
import { ensureSpireBinaries, type SpireBinaries } from './spire-binaries.ts';

const run = promisify(execFile);

export interface SpireOptions {
  trustDomain?: string;
  /** default_x509_svid_ttl; entries may set their own. Default 1h (SPIRE's). */
  defaultX509SvidTtlSeconds?: number;
}

export interface EntryOptions {
  spiffeId: string;
  /** Selectors such as `unix:uid:1000`; default: this process's uid. */
  selectors?: string[];
  /** The entry's X.509-SVID TTL; short ones make SPIRE rotate often (at about half the lifetime). */
  x509SvidTtlSeconds?: number;
  hint?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Spire {
  readonly dir: string;
  readonly trustDomain: string;
  /** The agent's Workload API socket path, and as a SPIFFE_ENDPOINT_SOCKET value. */
  readonly agentSocket: string;
  readonly address: string;
  readonly serverSocket: string;
  private bins!: SpireBinaries;
  private server?: ChildProcess;
  private agent?: ChildProcess;
  private agentId = '';
  private serverPort = 0;

  private constructor(dir: string, trustDomain: string) {
    this.dir = dir;
    this.trustDomain = trustDomain;
    this.agentSocket = path.join(dir, 'agent.sock');
    this.address = `unix://${this.agentSocket}`;
    this.serverSocket = path.join(dir, 'server.sock');
  }

  /** Builds SPIRE if needed (hack/build-spire.sh), starts server and agent, and waits until both are healthy. */
  static async start(opts: SpireOptions = {}): Promise<Spire> {
    // A short directory: unix socket paths are limited to 107 bytes.
    const s = new Spire(await mkdtemp(path.join(os.tmpdir(), 'spire-')), opts.trustDomain ?? 'spire.test');
    try {
      s.bins = await ensureSpireBinaries();
      await s.startServer(opts.defaultX509SvidTtlSeconds ?? 3600);
      await s.startAgent();
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  private spawnLogged(bin: string, args: string[], log: string): ChildProcess {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = createWriteStream(path.join(this.dir, log));
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    return child;
  }

  private async startServer(svidTtl: number): Promise<void> {
    const port = await freePort();
    const conf = `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${this.serverSocket}"
  trust_domain = "${this.trustDomain}"
  data_dir = "${path.join(this.dir, 'server-data')}"
  log_level = "DEBUG"
  default_x509_svid_ttl = "${svidTtl}s"
  ca_ttl = "24h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${path.join(this.dir, 'server-data', 'datastore.sqlite3')}"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`;
    await writeFile(path.join(this.dir, 'server.conf'), conf);
    this.server = this.spawnLogged(
      this.bins.server,
      ['run', '-config', path.join(this.dir, 'server.conf')],
      'server.log',
    );
    await this.waitHealthy('spire-server', this.server, () =>
      run(this.bins.server, ['healthcheck', '-socketPath', this.serverSocket]),
    );
    this.serverPort = port;
  }

  private async startAgent(): Promise<void> {
    const bundle = (await this.serverCli(['bundle', 'show'])).stdout;
    await writeFile(path.join(this.dir, 'bundle.pem'), bundle);
    const token = /Token: (\S+)/.exec(
      (await this.serverCli(['token', 'generate', '-ttl', '600'])).stdout,
    )?.[1];
    if (!token) throw new Error('spire-server token generate printed no token');
    this.agentId = `spiffe://${this.trustDomain}/spire/agent/join_token/${token}`;
    const conf = `agent {
  data_dir = "${path.join(this.dir, 'agent-data')}"
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "${this.serverPort}"
  socket_path = "${this.agentSocket}"
  trust_bundle_path = "${path.join(this.dir, 'bundle.pem')}"
  trust_domain = "${this.trustDomain}"
  join_token = "${token}"
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`;
    await writeFile(path.join(this.dir, 'agent.conf'), conf);
    this.agent = this.spawnLogged(
      this.bins.agent,
      ['run', '-config', path.join(this.dir, 'agent.conf')],
      'agent.log',
    );
    await this.waitHealthy('spire-agent', this.agent, () =>
      run(this.bins.agent, ['healthcheck', '-socketPath', this.agentSocket]),
    );
  }

  private async waitHealthy(what: string, child: ChildProcess, check: () => Promise<unknown>): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(
          `${what} exited with code ${child.exitCode}; see ${path.join(this.dir, `${what.slice(6)}.log`)}`,
        );
      try {
        await check();
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`${what} was not healthy within 60 s: ${(err as Error).message}; see ${this.dir}`, {
            cause: err,
          });
      }
      await sleep(250);
    }
  }

  serverCli(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run(this.bins.server, [...args, '-socketPath', this.serverSocket]);
  }

  /** Registers a workload under this agent; returns the entry ID. */
  async createEntry(e: EntryOptions): Promise<string> {
    const uid = process.getuid?.() ?? 0;
    const args = ['entry', 'create', '-parentID', this.agentId, '-spiffeID', e.spiffeId];
    for (const sel of e.selectors ?? [`unix:uid:${uid}`]) args.push('-selector', sel);
    if (e.x509SvidTtlSeconds) args.push('-x509SVIDTTL', String(e.x509SvidTtlSeconds));
    if (e.hint) args.push('-hint', e.hint);
    const { stdout } = await this.serverCli(args);
    const id = /Entry ID\s*:\s*(\S+)/.exec(stdout)?.[1];
    if (!id) throw new Error(`spire-server entry create printed no entry ID: ${stdout}`);
    return id;
  }

  async deleteEntry(id: string): Promise<void> {
    await this.serverCli(['entry', 'delete', '-entryID', id]);
  }

  async stop(): Promise<void> {
    await terminate(this.agent);
    await terminate(this.server);
    if (!process.env.SPIRE_KEEP_DIR) await rm(this.dir, { recursive: true, force: true });
  }
}
