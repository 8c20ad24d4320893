/**
 * Calls `onGone` once when the process that launched this one goes away. A launcher that dies without passing a
 * signal on (killed outright, or a shell that does not forward SIGTERM) leaves its child reparented to init or a
 * subreaper, still serving; the ppid then changes, which is what this polls for (Linux has no portable event for it).
 */
export function watchParent (onGone: (parent: number) => void, intervalMs = 500): () => void {
  const parent = process.ppid
  // Started by init or as a container's PID 1: there is no launcher to outlive.
  if (parent <= 1) return () => {}
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    onGone(parent)
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
