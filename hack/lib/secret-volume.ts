import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface Files {
  'tls.crt': string;
  'tls.key': string;
  'ca.crt': string;
}

/**
 * A directory laid out and updated the way kubelet updates a Secret volume (atomic_writer.go): files in a
 * ..<timestamp> directory, ..data pointing at it, visible names as symlinks through ..data; an update
 * writes a new directory, points ..data_tmp at it, renames that over ..data, then removes the old one.
 */
export class SecretVolume {
  readonly dir: string;
  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(files: Files): Promise<SecretVolume> {
    const v = new SecretVolume(await mkdtemp(path.join(os.tmpdir(), 'svid-vol-')));
    const gen = await v.writeGeneration(files);
    await symlink(gen, path.join(v.dir, '..data'));
    for (const name of Object.keys(files)) await symlink(path.join('..data', name), path.join(v.dir, name));
    return v;
  }

  private async writeGeneration(files: Partial<Files>): Promise<string> {
    const name = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${randomBytes(4).toString('hex')}`;
    await mkdir(path.join(this.dir, name));
    for (const [f, content] of Object.entries(files)) await writeFile(path.join(this.dir, name, f), content);
    return name;
  }

  async swap(files: Partial<Files>): Promise<void> {
    const old = await readlink(path.join(this.dir, '..data'));
    const gen = await this.writeGeneration(files);
    await symlink(gen, path.join(this.dir, '..data_tmp'));
    await rename(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    await rm(path.join(this.dir, old), { recursive: true, force: true });
  }

  remove(): Promise<void> {
    return rm(this.dir, { recursive: true, force: true });
  }
}
