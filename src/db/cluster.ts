import crypto from "node:crypto";
import type { Clock } from "../store/clock.js";
import type { Store } from "../store/db.js";
import { ChannelClient, listenChannel } from "./channel.js";
import { DbError, type ChildOp, type DbExecutor, type DbRouting } from "./executor.js";

export interface DbClusterOptions {
  /** This host (the owner named in the leases it takes). */
  hostId: string;
  /** `host:port` to listen on for other hosts; port 0 picks one. Registered with each lease. */
  address: string;
  masterKey: Buffer;
  /** A lease unrenewed for this long may be taken by another host. */
  leaseMs: number;
  renewMs: number;
  /** Largest forwarded request body (the largest import plus its envelope). */
  maxBodyBytes: number;
  clock: Clock;
  log: (line: string) => void;
}

/** What a host sends the owner, and what it answers. */
interface ForwardedOp {
  projectId: string;
  op: ChildOp;
  timeoutMs: number;
}
interface Answer {
  value?: unknown;
  notOwner?: boolean;
  error?: { kind: DbError["kind"]; message: string };
}

/** Where a project's database is served from: here, or another host at `address`. */
type Place = "here" | { hostId: string; address: string; until: number };

/** The owner no longer holds the database (it is stopping, or lost its lease): ask again. */
class NotOwner extends Error {}

/** The owner's address did not answer. */
class Unreachable extends DbError {}

/**
 * One owner per project database in a cluster, as D1 runs each database with one primary.
 * The owner holds a lease in the store (`database_owners`), renewed every `renewMs` and void
 * `leaseMs` after its last renewal; only the owner's database processes open the file. Any
 * other host sends the project's operations to the owner's registered address over the
 * hosts' channel (src/db/channel.ts: persistent connections, both ends proving they hold a
 * key derived from the master key when one opens; a peer that cannot is cut off before
 * anything it sends is read as a request). The owner
 * runs them exactly as local ones (same executor, same limits and time limits) and answers
 * with the result or the same DbError, so forwarding changes no semantics.
 */
export class DbCluster implements DbRouting {
  private held = new Map<string, number>();
  private remote = new Map<string, { hostId: string; address: string; until: number }>();
  private claims = new Map<string, Promise<Place>>();
  private inFlight = 0;
  private stopping = false;
  private server?: { port: number; close: () => void };
  private timer?: NodeJS.Timeout;
  private client: ChannelClient;
  private key: Buffer;
  private executor?: DbExecutor;
  /** The address other hosts reach this one on (registered with each lease). */
  address = "";
  readonly stats = { forwarded: 0, served: 0 };

  constructor(
    private db: Store,
    private o: DbClusterOptions,
  ) {
    this.key = Buffer.from(
      crypto.hkdfSync("sha256", o.masterKey, "", "workerbase cluster channel", 32),
    );
    this.client = new ChannelClient(this.key, o.maxBodyBytes);
  }

  /** Listens for other hosts and starts renewing leases; operations run on `executor`. */
  async start(executor: DbExecutor): Promise<void> {
    this.executor = executor;
    const [host, port] = splitAddress(this.o.address);
    this.server = await listenChannel(host, port, this.key, this.o.maxBodyBytes, (request) =>
      this.serve(request as ForwardedOp),
    );
    const actual = this.server.port;
    this.address = `${host.includes(":") ? `[${host}]` : host}:${actual}`;
    this.timer = setInterval(() => void this.renew(), this.o.renewMs);
    this.timer.unref();
    executor.route(this);
  }

  async run(
    projectId: string,
    op: ChildOp,
    timeoutMs: number,
    here: () => Promise<unknown>,
  ): Promise<unknown> {
    // An owner that is stopping answers "not the owner" until it has released its leases:
    // ask again for a while, then the next host takes them.
    const deadline = this.o.clock.now() + 5000;
    for (;;) {
      const place = await this.place(projectId);
      if (place === "here") {
        this.inFlight++;
        try {
          return await here();
        } finally {
          this.inFlight--;
        }
      }
      try {
        return await this.forward(place, projectId, op, timeoutMs);
      } catch (err) {
        this.remote.delete(projectId);
        // Unreachable: gone for good if it released its lease (ask again), else dead or cut
        // off (its lease still holds; the caller hears so until it lapses).
        if (err instanceof Unreachable && (await this.sameLease(projectId, place))) throw err;
        if (!(err instanceof NotOwner) && !(err instanceof Unreachable)) throw err;
        if (this.o.clock.now() > deadline)
          throw new DbError("crashed", "The database's owner did not hand it over in time");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** How many databases this host owns now. */
  owned(): number {
    return [...this.held.keys()].filter((id) => this.holds(id)).length;
  }

  /** Whether this host holds `projectId`'s database now (by its own reckoning of the lease). */
  holds(projectId: string): boolean {
    const until = this.held.get(projectId);
    return until !== undefined && until > this.o.clock.now();
  }

  private place(projectId: string): Promise<Place> {
    if (this.holds(projectId)) return Promise.resolve("here");
    const known = this.remote.get(projectId);
    if (known && known.until > this.o.clock.now()) return Promise.resolve(known);
    // One claim at a time per project from this host.
    let claim = this.claims.get(projectId);
    if (!claim) {
      claim = this.claim(projectId).finally(() => this.claims.delete(projectId));
      this.claims.set(projectId, claim);
    }
    return claim;
  }

  /** Takes the lease if it is free, lapsed or already ours; else learns who holds it. */
  private async claim(projectId: string): Promise<Place> {
    if (this.stopping) throw new DbError("stopped", "The database service is shutting down");
    const now = this.o.clock.now();
    const until = now + this.o.leaseMs;
    const taken = await this.db
      .insertInto("database_owners")
      .values({ project_id: projectId, host_id: this.o.hostId, address: this.address, until })
      .onConflict((oc) =>
        oc
          .column("project_id")
          .doUpdateSet({ host_id: this.o.hostId, address: this.address, until })
          .where((eb) =>
            eb.or([
              eb("database_owners.until", "<=", now),
              eb("database_owners.host_id", "=", this.o.hostId),
            ]),
          ),
      )
      .returning("host_id")
      .executeTakeFirst();
    if (taken?.host_id === this.o.hostId) {
      // Counted from before the statement: this host stops using it before anyone may take it.
      this.held.set(projectId, until);
      return "here";
    }
    const row = await this.db
      .selectFrom("database_owners")
      .select(["host_id", "address", "until"])
      .where("project_id", "=", projectId)
      .executeTakeFirst();
    if (!row) return this.claim(projectId); // released meanwhile
    const place = { hostId: row.host_id, address: row.address, until: Number(row.until) };
    this.remote.set(projectId, place);
    return place;
  }

  /** Whether the lease the store records is still the one `place` was read from. */
  private async sameLease(projectId: string, place: { hostId: string; address: string }) {
    const row = await this.db
      .selectFrom("database_owners")
      .select(["host_id", "address", "until"])
      .where("project_id", "=", projectId)
      .executeTakeFirst();
    return (
      !!row &&
      row.host_id === place.hostId &&
      row.address === place.address &&
      Number(row.until) > this.o.clock.now()
    );
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0 || this.stopping) return;
    const now = this.o.clock.now();
    const until = now + this.o.leaseMs;
    try {
      const kept = await this.db
        .updateTable("database_owners")
        .set({ until })
        .where("host_id", "=", this.o.hostId)
        .where("project_id", "in", [...this.held.keys()])
        .returning("project_id")
        .execute();
      const still = new Set(kept.map((r) => r.project_id));
      for (const projectId of [...this.held.keys()]) {
        if (still.has(projectId)) this.held.set(projectId, until);
        else {
          this.held.delete(projectId);
          this.o.log(`lost the lease on project ${projectId}'s database to another host`);
        }
      }
    } catch (err) {
      // Unrenewed, a lease lapses by itself: `holds` stops answering yes at its old expiry.
      this.o.log(`renewing database leases failed: ${(err as Error).message}`);
    }
  }

  private async forward(
    place: { address: string },
    projectId: string,
    op: ChildOp,
    timeoutMs: number,
  ): Promise<unknown> {
    this.stats.forwarded++;
    const [host, port] = splitAddress(place.address);
    // The statement's own limit runs on the owner; this only bounds a dead connection.
    const answer = (await this.client
      .request(host, port, { projectId, op, timeoutMs }, timeoutMs + 10_000)
      .catch((err: Error) => {
        throw new Unreachable(
          "crashed",
          `The host that owns this project's database cannot be reached (${err.message}); try again in a few seconds`,
        );
      })) as Answer;
    if (answer.notOwner) throw new NotOwner();
    if (answer.error) throw new DbError(answer.error.kind, answer.error.message);
    return answer.value;
  }

  /** An operation forwarded by another (authenticated) host: run here, answered. */
  private async serve(input: ForwardedOp): Promise<Answer> {
    if (this.stopping || typeof input?.projectId !== "string" || !this.holds(input.projectId))
      return { notOwner: true };
    this.inFlight++;
    this.stats.served++;
    try {
      return { value: await this.executor!.runHere(input.projectId, input.op, input.timeoutMs) };
    } catch (err) {
      if (err instanceof DbError) return { error: { kind: err.kind, message: err.message } };
      return { error: { kind: "crashed", message: (err as Error).message } };
    } finally {
      this.inFlight--;
    }
  }

  /**
   * The first half of a graceful handover: takes no more operations and lets the running ones
   * finish (until `deadline`, epoch ms). Then the executor closes its files, and `release`.
   */
  async drain(deadline: number): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Gives up every lease (after the files are closed), so another host takes them at once. */
  async release(): Promise<void> {
    this.held.clear();
    try {
      await this.db.deleteFrom("database_owners").where("host_id", "=", this.o.hostId).execute();
    } catch (err) {
      this.o.log(
        `releasing database leases failed (they lapse by themselves): ${(err as Error).message}`,
      );
    }
    this.client.close();
    this.server?.close();
  }
}

/** `host:port` (or `[v6]:port`) as its parts. */
export function splitAddress(address: string): [string, number] {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`A cluster address is host:port, got "${address}"`);
  return [m[1]!, Number(m[2])];
}
