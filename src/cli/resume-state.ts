import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * What the CLI remembers between runs so that re-running an interrupted `sluice upload` resumes
 * the same upload: a small JSON file mapping server + absolute path + size + mtime to an upload id.
 * Kept in $XDG_STATE_HOME/sluice (default ~/.local/state/sluice), or SLUICE_STATE_DIR.
 */
export class ResumeState {
  private readonly file: string;

  constructor(dir = process.env.SLUICE_STATE_DIR ?? path.join(process.env.XDG_STATE_HOME ?? path.join(os.homedir(), '.local', 'state'), 'sluice')) {
    this.file = path.join(dir, 'uploads.json');
  }

  static key(server: string, absolutePath: string, size: number, mtimeMs: number): string {
    return `${server} ${absolutePath} ${size} ${Math.trunc(mtimeMs)}`;
  }

  private async read(): Promise<Record<string, string>> {
    try {
      return JSON.parse(await fs.readFile(this.file, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.read())[key];
  }

  async set(key: string, id: string | undefined): Promise<void> {
    const all = await this.read();
    if (id === undefined) delete all[key];
    else all[key] = id;
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    // Write then rename, so that a crash never leaves half a state file.
    const tmp = `${this.file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(all, null, 1), { mode: 0o600 });
    await fs.rename(tmp, this.file);
  }
}
