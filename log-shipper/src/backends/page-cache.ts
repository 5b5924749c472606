/**
 * Lets go of the page cache that holds log data already on disk: posix_fadvise(DONTNEED) over
 * a file's synced bytes, once a sync covered them (LOG_FSYNC=interval or always).
 *
 * Why: the shipper writes 100+ MB/s that nobody reads back (a tail reads the last few pages),
 * and the kernel keeps every written page cached until memory runs short. Measured on this VM
 * (docs/BENCHMARKS.md): a plain writer at 131 MB/s paid 0.07 core of system time until its
 * cache passed ~5 GB, then 0.58 — every new page was memory the hypervisor had taken back and
 * had to give again — and the shipper fell behind 40 s into a 60 s run; with the synced pages
 * dropped each second the same writer stayed at 0.09 core for 70 s. On bare metal the cost
 * comes later (reclaim once RAM is full), and the cache evicts what the front server's other
 * work wanted. The range stops at the last whole page: a range reaching the end of the file
 * would drop the page an append is filling too (Linux ≥ 5.2 drops a partial last page), and
 * the next append would wait for it to be read back from disk. The kernel never drops a
 * dirty page, so nothing written after the sync is lost.
 *
 * Node has no binding for posix_fadvise; koffi (a prebuilt FFI) calls libc's. Where it cannot
 * load (no glibc, another OS) dropping is off and the shipper works as before.
 */
import type { Logger } from 'pino';

const POSIX_FADV_DONTNEED = 4; // Linux's value (bits/fcntl-linux.h)

type Fadvise = (fd: number, offset: number, len: number, advice: number) => number;

let fadvise: Fadvise | null | undefined;
let pageSize = 4096;

async function load(log: Logger): Promise<Fadvise | null> {
  if (fadvise !== undefined) return fadvise;
  if (process.platform !== 'linux') return (fadvise = null);
  try {
    const { default: koffi } = await import('koffi');
    const libc = koffi.load('libc.so.6');
    fadvise = libc.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as Fadvise;
    pageSize = (libc.func('int getpagesize()') as () => number)();
  } catch (err) {
    log.warn({ err }, 'posix_fadvise unavailable: synced log data stays in the page cache');
    fadvise = null;
  }
  return fadvise;
}

export class PageCache {
  private constructor(private readonly advise: Fadvise | null) {}

  static async create(log: Logger): Promise<PageCache> {
    return new PageCache(await load(log));
  }

  get available(): boolean {
    return this.advise !== null;
  }

  /**
   * Drops the cached pages wholly within the file's first `bytes` (all synced). Errors are
   * ignored: the advice is an optimisation, and an fd closed meanwhile is the caller's race to avoid.
   */
  dropSynced(fd: number, bytes: number): boolean {
    const whole = bytes - (bytes % pageSize);
    if (this.advise === null || whole <= 0) return false;
    return this.advise(fd, 0, whole, POSIX_FADV_DONTNEED) === 0;
  }
}
