// A one-layer OCI image archive from files on this machine, for the node's own small images (the
// sandbox "pause" image and CoreDNS) that no registry can provide here. `ctr images import` loads it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ImageSpec {
  /** Full reference the image gets in containerd, e.g. "svid.local/pause:v1.36.3". */
  ref: string;
  /** Files to copy in: absolute host path -> absolute path in the image. */
  files: Record<string, string>;
  entrypoint: string[];
  user?: string;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Writes `out` (a tar in the OCI image layout); returns its manifest digest. */
export async function writeOciArchive(spec: ImageSpec, out: string): Promise<string> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'svid-oci-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    for (const [src, dest] of Object.entries(spec.files)) {
      if (!path.isAbsolute(dest) || dest.includes('..')) throw new Error(`bad image path ${dest}`);
      const target = path.join(rootfs, dest);
      await mkdir(path.dirname(target), { recursive: true });
      await copyFile(src, target);
      await chmod(target, 0o755);
    }
    await mkdir(path.join(rootfs, 'tmp'), { recursive: true });
    const layout = path.join(work, 'layout');
    const blobs = path.join(layout, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const layerTar = path.join(work, 'layer.tar');
    // Reproducible: sorted names, fixed owner and time.
    await run('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '-C',
      rootfs,
      '-cf',
      layerTar,
      '.',
    ]);
    const layer = await readFile(layerTar);
    const layerDigest = sha256(layer);
    await writeFile(path.join(blobs, layerDigest), layer);
    const blob = async (mediaType: string, json: unknown) => {
      const data = Buffer.from(JSON.stringify(json));
      const digest = sha256(data);
      await writeFile(path.join(blobs, digest), data);
      return { mediaType, digest: `sha256:${digest}`, size: data.length };
    };
    const config = await blob('application/vnd.oci.image.config.v1+json', {
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      os: 'linux',
      config: { Entrypoint: spec.entrypoint, User: spec.user ?? '65532:65532', WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
    });
    const manifest = await blob('application/vnd.oci.image.manifest.v1+json', {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config,
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          digest: `sha256:${layerDigest}`,
          size: layer.length,
        },
      ],
    });
    await writeFile(
      path.join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            ...manifest,
            annotations: {
              'io.containerd.image.name': spec.ref,
              'org.opencontainers.image.ref.name': spec.ref.slice(spec.ref.lastIndexOf(':') + 1),
            },
          },
        ],
      }),
    );
    await writeFile(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await mkdir(path.dirname(out), { recursive: true });
    await run('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '-C',
      layout,
      '-cf',
      out,
      '.',
    ]);
    return manifest.digest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
