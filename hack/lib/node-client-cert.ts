// A kubelet-style client certificate for a control plane started by control-plane.ts: CN=system:node:<name>,
// O=system:nodes, signed by that control plane's client CA, so that requests made with it are the node's
// (the Node authorizer and NodeRestriction admission judge them). No kubelet runs; tests act as the node.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface NodeCredentials {
  nodeName: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** `controlPlaneDir` is ControlPlane.dir; its pki/ca.crt and ca.key are the client CA. */
export async function nodeClientCertificate(
  controlPlaneDir: string,
  nodeName: string,
): Promise<NodeCredentials> {
  if (!/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(nodeName)) throw new Error(`bad node name ${nodeName}`);
  const pki = path.join(controlPlaneDir, 'pki');
  const f = (n: string) => path.join(pki, `node-${nodeName}.${n}`);
  await run('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    f('key'),
  ]);
  await run('openssl', [
    'req',
    '-new',
    '-key',
    f('key'),
    '-subj',
    `/O=system:nodes/CN=system:node:${nodeName}`,
    '-out',
    f('csr'),
  ]);
  await writeFile(f('ext'), 'extendedKeyUsage=clientAuth\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    f('csr'),
    '-CA',
    path.join(pki, 'ca.crt'),
    '-CAkey',
    path.join(pki, 'ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    f('ext'),
    '-out',
    f('crt'),
  ]);
  const certPem = await readFile(f('crt'), 'utf8');
  const keyPem = await readFile(f('key'), 'utf8');
  const caPem = await readFile(path.join(pki, 'ca.crt'), 'utf8');
  return { nodeName, certPem, keyPem, caPem };
}
