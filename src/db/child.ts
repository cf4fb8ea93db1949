// A database child process: holds some projects' SQLite files open and runs one request at a
// time from the host (src/db/executor.ts) over the IPC channel. It may be SIGKILLed at any
// moment (a statement past its time limit); WAL mode keeps the files consistent.
import type { ChildReply, ChildRequest } from "./executor.js";
import { failureOf, ProjectDatabase } from "./service.js";

const maxOpen = Number(process.env.WORKERBASE_DB_MAX_OPEN) || 64;
const maxResultBytes = Number(process.env.WORKERBASE_DB_MAX_RESULT_BYTES) || undefined;
/** Open databases, least recently used first. */
const open = new Map<string, ProjectDatabase>();

function database(file: string): ProjectDatabase {
  let db = open.get(file);
  if (db) {
    open.delete(file);
  } else {
    db = new ProjectDatabase(file, maxResultBytes);
    if (open.size >= maxOpen) {
      const [oldest, handle] = open.entries().next().value!;
      open.delete(oldest);
      handle.close();
    }
  }
  open.set(file, db);
  return db;
}

function run(db: ProjectDatabase, request: ChildRequest): unknown {
  switch (request.op) {
    case "query":
      return db.query(request.queries);
    case "statements":
      return db.statementsInOrder(request.sql, request.params);
    case "tables":
      return db.tables();
    case "export":
      return db.exportSql(request.maxBytes);
    case "import":
      return db.importSql(request.sql);
  }
}

function answer(request: ChildRequest): ChildReply {
  try {
    const db = database(request.file);
    return { id: request.id, ok: true, value: run(db, request) };
  } catch (err) {
    return { id: request.id, ok: false, error: failureOf(err).message };
  }
}

function send(reply: ChildReply): void {
  if (process.connected) process.send!(reply);
}

/** The host closed the channel (shutdown) or died: close the files cleanly and go. */
function leave(): never {
  for (const db of open.values()) db.close();
  process.exit(0);
}

// A stop signal sent to the whole process group (systemd, docker stop, a terminal's Ctrl-C)
// is for the host, which finishes its work and then closes this channel (see `leave`).
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => {});
process.on("message", (request: ChildRequest) => send(answer(request)));
process.on("disconnect", leave);
if (!process.connected) leave();
send({ ready: true });
