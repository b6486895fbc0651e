import { spawnSync } from 'child_process';
import { existsSync } from 'fs';

/**
 * A Python interpreter that imports `module` (the peer a benchmark compares against), or why there
 * is none. BENCH_PYTHON names the interpreter; otherwise Debian's /usr/bin/python3, then python3.
 */
export function findPeer(module: string): { python?: string; reason?: string } {
  const candidates = process.env.BENCH_PYTHON
    ? [process.env.BENCH_PYTHON]
    : ['/usr/bin/python3', 'python3'].filter((p) => p === 'python3' || existsSync(p));
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' });
    if (probe.status === 0) return { python };
  }
  return { reason: `no python3 with ${module} importable (tried ${candidates.join(', ')})` };
}
