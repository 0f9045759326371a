// Network namespaces by file descriptor: open one from a path (/var/run/netns/x, /proc/PID/ns/net)
// and run synchronous work inside it on the calling thread, then return. Sockets opened inside
// stay bound to that namespace after we leave, which is how twill talks to a pod's kernel state.
import { CLONE_NEWNET, ENOENT, O_CLOEXEC, O_RDONLY } from "./netlink/constants.ts";
import { cstring, errno, libc, SyscallError } from "./netlink/libc.ts";
import { NetlinkSocket } from "./netlink/socket.ts";

/** The path names no namespace (ENOENT). */
export class NetnsNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`network namespace ${path} does not exist`);
  }
}

export class Netns {
  private constructor(readonly fd: number, readonly path: string) {}

  static open(path: string): Netns {
    const fd = libc().open(cstring(path), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const e = errno();
      if (e === ENOENT) throw new NetnsNotFoundError(path);
      throw new SyscallError("open", e, path);
    }
    return new Netns(fd, path);
  }

  /** Runs `fn` with this thread inside the namespace; always returns to where it was. */
  run<T>(fn: () => T): T {
    const c = libc();
    const home = c.open(cstring("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC);
    if (home < 0) throw new SyscallError("open", errno(), "/proc/thread-self/ns/net");
    try {
      if (c.setns(this.fd, CLONE_NEWNET) < 0) {
        throw new SyscallError("setns", errno(), `into ${this.path}`);
      }
      try {
        return fn();
      } finally {
        if (c.setns(home, CLONE_NEWNET) < 0) {
          // Continuing in the wrong namespace would corrupt the node: stop here.
          const e = new SyscallError("setns", errno(), "back to the original namespace");
          console.error(`twill: fatal: ${e.message}`);
          Deno.exit(70);
        }
      }
    } finally {
      c.close(home);
    }
  }

  /** A rtnetlink socket bound to this namespace. */
  socket(): NetlinkSocket {
    return this.run(() => NetlinkSocket.open());
  }

  close(): void {
    libc().close(this.fd);
  }
}
