import os from 'node:os';
import path from 'node:path';
import { writeOciArchive } from '../../hack/lib/oci-archive.ts';

export const busyboxImage = 'svid.local/busybox:test';

/** A one-file image with Debian's static busybox (package busybox-static, installed by hack/build-node.sh). */
export async function buildBusyboxImage(): Promise<string> {
  const out = path.join(os.tmpdir(), `svid-busybox-${process.pid}.tar`);
  await writeOciArchive(
    { ref: busyboxImage, files: { '/bin/busybox': '/bin/busybox' }, entrypoint: ['/bin/busybox'] },
    out,
  );
  return out;
}
