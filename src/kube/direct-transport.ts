// Requests as a DirectConfig says: one pooled undici Agent with the TLS material read once, and the
// bearer token (re-read from its file on rotation) as a header.
import { readFile } from 'node:fs/promises';
import { Agent } from './undici-agent.ts';
import type { Connection, KubeTransport } from './connection.ts';
import type { DirectConfig, Material } from './kubeconfig.ts';
import { TokenFile } from './token-file.ts';

export async function directTransport(config: DirectConfig): Promise<KubeTransport> {
  const [ca, cert, key] = await Promise.all([
    readMaterial(config.ca, 'certificate authority'),
    readMaterial(config.cert, 'client certificate'),
    readMaterial(config.key, 'client key'),
  ]);
  const url = new URL(config.server);
  const dispatcher = new Agent({
    connect: {
      ...(ca && { ca }),
      ...(cert && { cert }),
      ...(key && { key }),
      ...(config.servername && { servername: config.servername }),
      rejectUnauthorized: !config.insecureSkipTlsVerify,
    },
  });
  const tokenFile = config.tokenFile ? new TokenFile(config.tokenFile) : undefined;
  const base = { origin: url.origin, pathPrefix: url.pathname.replace(/\/+$/, ''), dispatcher };
  const fixed: Connection = {
    ...base,
    headers: config.token ? { authorization: `Bearer ${config.token}` } : {},
  };
  const auth = [cert && 'client certificate', (tokenFile ?? config.token) && 'bearer token']
    .filter(Boolean)
    .join(' and ');
  return {
    connection: tokenFile
      ? async () => ({ ...base, headers: { authorization: `Bearer ${await tokenFile.token()}` } })
      : () => Promise.resolve(fixed),
    close: () => dispatcher.close(),
    description: `${url.origin} (${auth || 'anonymous'}${config.insecureSkipTlsVerify ? ', TLS NOT verified' : ''})`,
  };
}

async function readMaterial(m: Material | undefined, what: string): Promise<Buffer | undefined> {
  if (!m) return undefined;
  if ('data' in m) return m.data;
  try {
    return await readFile(m.file);
  } catch (err) {
    throw new Error(
      `cannot read the ${what} file ${m.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): fix the path in the kubeconfig`,
      { cause: err },
    );
  }
}
