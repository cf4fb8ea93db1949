import { fork, type ChildProcess } from "node:child_process";
import dns from "node:dns";
import { EventEmitter } from "node:events";
import type http from "node:http";
import net from "node:net";
import os from "node:os";
import { fileURLToPath } from "node:url";
import util from "node:util";
import type { Config } from "./config.js";
import type { RunningHost } from "./boot.js";
import { listen } from "./listen.js";
import { secureDataDir } from "./datadir.js";
import { openStore } from "../store/db.js";
import { ProjectService } from "../projects/service.js";
import { loadMasterKey } from "../secrets/crypto.js";
import { hostIdFor } from "../workflows/host.js";

/** How the parent of `serve --workers` looks after its children. */
const supervision = {
  /** Wait before restarting a child that exited, doubled at each exit in a row... */
  restartMinMs: 250,
  /** ...up to this. */
  restartMaxMs: 10_000,
  /** A child that served this long before it exited is restarted after the shortest wait. */
  stableAfterMs: 10_000,
  /** On stop, a child gets its shutdown grace plus this long before it is killed. */
  stopMarginMs: 20_000,
};

const bin = fileURLToPath(new URL("../../bin/workerbase.js", import.meta.url));

/** Where a child finds the public socket: after stdin, stdout, stderr and the IPC channel. */
const childFd = 4;

/** What a child tells its parent. */
type WorkerMessage = { type: "ready" } | { type: "failed"; message: string };

interface TcpHandle {
  fd: number;
  getsockname(out: { port?: number }): number;
  close(): void;
}

// Undocumented, and what node:cluster's primary uses to bind a socket that only its workers
// accept on. Returns a negative errno when the bind fails.
const createServerHandle = (
  net as unknown as {
    _createServerHandle: (address: string, port: number, family: number) => TcpHandle | number;
  }
)._createServerHandle;

/**
 * The public port, bound here and accepted on only by the children: the parent never takes a
 * connection, and the socket outlives any one child, so a child's replacement inherits the very
 * same one (connections wait in its backlog meanwhile). `listen` (listen.ts) drives it as it
 * drives a server, so a taken port fails with the same sentence as a lone host's.
 */
class BoundPort extends EventEmitter {
  private handle?: TcpHandle;

  listen(port: number, host: string, done: () => void): void {
    dns.lookup(host, (err, address, family) => {
      if (err) return void this.emit("error", err);
      let bound = createServerHandle(address, port, family);
      // libuv keeps a bind's EADDRINUSE for the listen that follows (which the children do,
      // and which would then take any free port): a socket left unbound has no port.
      if (typeof bound !== "number" && portOf(bound) === 0) {
        bound.close();
        bound = -os.constants.errno.EADDRINUSE;
      }
      if (typeof bound === "number") {
        const code = util.getSystemErrorName(bound);
        const error = Object.assign(new Error(`bind ${code} ${address}:${port}`), {
          code,
          errno: bound,
          syscall: "bind",
        });
        return void this.emit("error", error);
      }
      this.handle = bound;
      done();
    });
  }

  get fd(): number {
    return this.handle!.fd;
  }

  get port(): number {
    return portOf(this.handle!);
  }

  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}

function portOf(handle: TcpHandle): number {
  const out: { port?: number } = {};
  handle.getsockname(out);
  return out.port ?? 0;
}

interface Slot {
  index: number;
  child?: ChildProcess;
  exited?: Promise<number | null>;
  readyAt?: number;
  /** Exits in a row without serving `stableAfterMs`: the next restart waits longer. */
  exits: number;
  restart?: NodeJS.Timeout;
}

/**
 * `serve --workers N`: binds the public port, migrates the store and creates the first project
 * once, then runs N hosts as child processes accepting on that one socket, each with its own
 * workerd processes. A child that exits is started again while the parent runs; a child whose
 * parent dies shuts itself down (see `worker`). Resolves once every child is listening;
 * a child that fails to start fails the whole start with its sentence.
 */
export async function startWorkers(
  config: Config,
  args: string[],
  print: (line: string) => void = console.log,
): Promise<RunningHost> {
  const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);
  const port = new BoundPort();
  await listen(port as unknown as http.Server, config.port, config.host);
  try {
    secureDataDir(config.dataDir, log);
    // Files of the data dir that the children would race to create (one could read another's
    // half-written file), and the store's schema and first project, which they leave to
    // the parent: all made here, before any of them starts.
    loadMasterKey(config.dataDir, config.masterKey);
    hostIdFor(config.dataDir);
    const db = await openStore(config.dataDir, { databaseUrl: config.databaseUrl, log });
    try {
      await new ProjectService(db).bootstrap(config.dataDir, config.apiKey, print);
    } finally {
      await db.destroy();
    }
  } catch (err) {
    port.close();
    throw err;
  }

  const slots: Slot[] = Array.from({ length: config.workers }, (_, index) => ({
    index,
    exits: 0,
  }));
  let stopping = false;
  let started = false;
  let failStart: (err: Error) => void = () => {};
  let oneReady: () => void = () => {};

  const start = (slot: Slot) => {
    slot.restart = undefined;
    slot.readyAt = undefined;
    let failure: string | undefined;
    const child = fork(bin, ["serve", ...args], {
      stdio: ["inherit", "inherit", "inherit", "ipc", port.fd],
      env: {
        ...process.env,
        WORKERBASE_WORKER_INDEX: String(slot.index),
        WORKERBASE_LISTEN_FD: String(childFd),
        // Each host needs an identity of its own (it owns the work it claims).
        ...(config.hostId ? { WORKERBASE_HOST_ID: `${config.hostId}-${slot.index}` } : {}),
      },
    });
    slot.child = child;
    slot.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.on("message", (message: WorkerMessage) => {
      if (message?.type === "ready") {
        slot.readyAt = Date.now();
        oneReady();
      } else if (message?.type === "failed") failure = String(message.message);
    });
    child.on("error", (err) => log(`worker ${slot.index}: ${err.message}`));
    child.once("exit", (code, signal) => {
      slot.child = undefined;
      if (stopping) return;
      const how = failure
        ? `failed to start: ${failure}`
        : `exited (${signal ? `signal ${signal}` : `code ${code}`})`;
      if (!started) return failStart(new Error(failure ?? `worker ${slot.index} ${how}`));
      const served = slot.readyAt === undefined ? 0 : Date.now() - slot.readyAt;
      slot.exits = served >= supervision.stableAfterMs ? 1 : slot.exits + 1;
      const waitMs = Math.min(
        supervision.restartMinMs * 2 ** (slot.exits - 1),
        supervision.restartMaxMs,
      );
      log(`worker ${slot.index} ${how}; starting it again in ${waitMs} ms`);
      slot.restart = setTimeout(() => start(slot), waitMs);
    });
  };

  let stopped: Promise<void> | undefined;
  const shutdown = () =>
    (stopped ??= (async () => {
      stopping = true;
      // The children still hold the socket; each stops accepting as it drains.
      port.close();
      for (const slot of slots) clearTimeout(slot.restart);
      const codes = await Promise.all(
        slots.map(async (slot) => {
          const child = slot.child;
          if (!child) return 0;
          child.kill("SIGTERM");
          // Its workerd processes die with it (their parent-death signal).
          const timer = setTimeout(
            () => child.kill("SIGKILL"),
            config.shutdownGraceMs + supervision.stopMarginMs,
          );
          const code = await slot.exited;
          clearTimeout(timer);
          // One still starting had nothing to drain, and a signal may end it before it could.
          return slot.readyAt === undefined ? 0 : code;
        }),
      );
      const failed = slots.filter((_, i) => codes[i] !== 0).map((s) => s.index);
      if (failed.length > 0) throw new Error(`worker(s) ${failed.join(", ")} did not stop cleanly`);
    })());

  try {
    await new Promise<void>((resolve, reject) => {
      failStart = reject;
      oneReady = () => {
        if (slots.every((s) => s.readyAt !== undefined)) resolve();
      };
      for (const slot of slots) start(slot);
    });
  } catch (err) {
    await shutdown().catch(() => {});
    throw err;
  }
  started = true;
  const url = `http://${config.host}:${port.port}`;
  // Each worker host reads its own schedules; there is nothing to read in this parent.
  return { url, port: port.port, shutdown, reloadSchedules: async () => {} };
}

/**
 * The child side of `serve --workers`: tells the parent that this host listens (or why it could
 * not start), and stops this host when the parent goes away, even killed with SIGKILL, so that
 * no host (nor its workerd) outlives it.
 */
export const worker = {
  /** True in a child started by `startWorkers`. */
  active(config: Config): boolean {
    return config.listenFd !== undefined && typeof process.send === "function";
  },
  ready(): void {
    send({ type: "ready" });
  },
  failed(err: Error): void {
    send({ type: "failed", message: err.message });
  },
  /** Calls `stop` when the parent's channel closes; the channel no longer keeps us alive. */
  onParentGone(stop: () => void): void {
    // Gone while this host was starting: the event has been and gone.
    if (!process.connected) return void setImmediate(stop);
    process.once("disconnect", stop);
    process.channel?.unref();
  },
  /** Lets go of the parent's channel so the process can end. */
  release(): void {
    if (process.connected) process.disconnect();
  },
};

function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}
