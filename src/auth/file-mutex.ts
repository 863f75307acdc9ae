/**
 * A mutex between processes of one host for a short critical section on a local file: a lock file
 * created with O_EXCL. Holders keep it for milliseconds (a read and an atomic rename), so a lock
 * file older than STALE_MS belongs to a process that died holding it and is taken over.
 *
 * Taking over is not atomic with respect to a third process that creates a fresh lock file in the
 * same instant; that needs a holder to die inside its few-millisecond section first, and the
 * token's compare-and-set reads the file again under the lock, so the worst case is a lost race,
 * never a torn file (writes are atomic renames).
 */
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { RuntimeFailure } from '../errors.js';

const STALE_MS = 10_000;
const WAIT_MS = 5_000;

export async function withFileMutex<T>(dir: string, lockFile: string, work: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + WAIT_MS;
  for (let pause = 5; ; pause = Math.min(pause * 2, 50)) {
    try {
      const handle = await open(lockFile, 'wx', 0o600);
      await handle.writeFile(`${hostname()}:${process.pid}\n`).finally(() => handle.close());
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const age = await stat(lockFile).then(
      (info) => Date.now() - info.mtimeMs,
      () => 0,
    );
    if (age > STALE_MS) {
      // Renamed first, so that of two processes that both saw it stale only one removes it.
      const aside = `${lockFile}.stale-${process.pid}-${Date.now()}`;
      await rename(lockFile, aside).then(
        () => unlink(aside),
        () => undefined,
      );
      continue;
    }
    if (Date.now() >= deadline) {
      throw new RuntimeFailure(
        `Another process has held ${lockFile} for over ${WAIT_MS / 1000} s; if none is running, remove the file.`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  try {
    return await work();
  } finally {
    await unlink(lockFile).catch(() => undefined);
  }
}
