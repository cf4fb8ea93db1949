// D1's meta.rows_read and meta.rows_written, as workerd's SQLite counts them.
//
// workerd builds SQLite with libSQL's row counters (patches/sqlite/0001-row-counts-plain.patch
// in workerd, read through sqlite3_stmt_status(LIBSQL_STMTSTATUS_ROWS_READ/_WRITTEN) by
// src/workerd/util/sqlite.c++). A statement counts a row read each time its program moves a
// cursor onto a row: OP_Rewind, OP_Last, OP_SeekEnd (when it has to seek), OP_Sort,
// OP_SorterSort, a successful OP_Next, OP_Prev or OP_SorterNext, OP_SeekGE/GT/LE/LT (but not
// an equality seek that finds nothing), OP_SeekRowid, OP_NotExists and OP_VNext, plus every
// entry OP_Count counts. It counts a row written at each OP_Insert or OP_IdxInsert into a
// real b-tree (not an ephemeral one), each OP_Delete that counts as a change, and each row
// OP_Clear removes. D1's meta carries the counters of the last statement of a query.
//
// better-sqlite3's SQLite keeps no such counters and cannot say how often an opcode ran, so
// this module works the counts out from the statement's program (EXPLAIN) and what the run
// showed: rows returned and changed, and, asked of the database, how many rows a scanned
// table holds and how many index entries a seek's range covers. That is exact for the usual
// shapes; docs/decisions.md lists where it is not.

/** One instruction of a program, as EXPLAIN lists it. */
export interface Op {
  opcode: string;
  p1: number;
  p2: number;
  p3: number;
  p4: unknown;
  p5: number;
}

/** One end of an index or rowid range: the comparison op and the key's values. */
export interface Bound {
  op: string;
  values: unknown[];
}

/** The part of a b-tree a seek loop walks: from `start` (or the first entry) to `end`. */
export interface RangeQuery {
  root: number;
  descending: boolean;
  start?: Bound;
  end?: Bound;
  /** Entries past this many in the range need not be counted (the loop stops before). */
  cap?: number;
}

/** What the database can tell about its b-trees. */
export interface Catalog {
  /** Entries in the b-tree rooted at `root` (its table's row count), counting up to `cap`. */
  entries(root: number, cap?: number): number;
  /**
   * Entries within the range, and whether an entry lies past its end (the loop reads that
   * one too, then stops); undefined when it cannot tell.
   */
  range(query: RangeQuery): { inRange: number; beyond: boolean } | undefined;
  /** Leaf pages of the index named `name`; undefined when it cannot tell. */
  leafPages(name: string): number | undefined;
}

/** What one run of the statement showed. */
export interface RunFacts {
  /** Rows the statement returned. */
  returned: number;
  /** Rows the statement itself changed (sqlite3_changes; RETURNING rows for a reader). */
  changes: number;
  /** Rows changed in all, triggers and foreign-key actions included (total_changes). */
  totalChanges: number;
  /** last_insert_rowid() changed: an upsert inserted rather than updated. */
  inserted: boolean;
  /** Bound values by parameter number (1-based): LIMIT ?, OFFSET ? and seek keys. */
  params: unknown[];
  catalog: Catalog;
}

/** Rows a loop lands on each time it starts, and how many of them only end it. */
interface Walk {
  landings: number;
  exits: number;
}

type CursorKind = "table" | "index" | "new" | "ephemeral" | "sorter" | "vtab" | "pseudo";

interface Cursor {
  kind: CursorKind;
  root: number;
}

interface Loop {
  /** The op that positions the cursor before the first iteration (-1 for Goto loops). */
  head: number;
  /** First op of the body (where the closing op jumps back to). */
  start: number;
  /** The Next/Prev/SorterNext/VNext (or Goto) closing the loop. */
  end: number;
  cursor: number;
  kind: "scan" | "eph" | "seek" | "vtab" | "coroutine" | "rowset" | "goto";
  /** An equality seek (SeekGE, then IdxGT on the same key): finding nothing reads nothing. */
  equality: boolean;
  /** Entered by a jump past its head (min() finds its row with a seek before the loop). */
  jumpEntry?: boolean;
  /** The range walked over a real b-tree, for scans and seeks the database can measure. */
  range?: {
    root: number;
    descending: boolean;
    start?: { op: string; regs: number[] };
    /** The check ending the range, at `at` (its key registers may be loaded just before). */
    end?: { op: string; regs: number[]; at: number };
  };
}

const nextOps = new Set(["Next", "Prev", "SorterNext", "VNext"]);
const rewindOps = new Set(["Rewind", "Last", "Sort", "SorterSort"]);
const seekOps = new Set(["SeekGE", "SeekGT", "SeekLE", "SeekLT"]);
const headOps = new Set([...rewindOps, ...seekOps, "VFilter"]);
const indexChecks = new Set(["IdxGT", "IdxGE", "IdxLT", "IdxLE"]);
const valueChecks = new Set(["Gt", "Ge", "Lt", "Le"]);
/** Ops that load a register from a constant, a bound value or another register. */
const loads = new Set(["Integer", "Int64", "Real", "String8", "String", "Null", "Variable"]);
/** Ops writing their P2 register; then ops writing P3 (the rest leave registers alone here). */
const writesP2 = new Set([
  ...loads,
  "Copy",
  "SCopy",
  "IntCopy",
  "Rowid",
  "IdxRowid",
  "Sequence",
  "NewRowid",
  "Blob",
]);
const writesP3 = new Set([
  "Column",
  "Function",
  "MakeRecord",
  "Add",
  "Subtract",
  "Multiply",
  "Divide",
  "Remainder",
  "Concat",
  "BitAnd",
  "BitOr",
  "ShiftLeft",
  "ShiftRight",
  "SorterData",
  "RowData",
  "Count",
  "VColumn",
]);
/** Conditional jumps that, pointing further into a loop's body, skip rows (a filter). */
const filters = new Set([
  ...valueChecks,
  ...indexChecks,
  "Eq",
  "Ne",
  "If",
  "IfNot",
  "IsNull",
  "NotNull",
  "IfNullRow",
  "Found",
  "NotFound",
  "NoConflict",
  "SeekRowid",
  "NotExists",
  "RowSetTest",
  "Filter",
  "IfNoHope",
  "IsType",
  "ElseEq",
  "Jump",
  "MustBeInt",
]);
/** Ops that may jump to their P2 (generously: a missing one only makes code look dead). */
const jumpsToP2 = new Set([
  ...filters,
  ...nextOps,
  ...rewindOps,
  ...seekOps,
  "Goto",
  "Gosub",
  "Yield",
  "InitCoroutine",
  "Once",
  "IfPos",
  "IfNotZero",
  "DecrJumpZero",
  "VFilter",
  "RowSetRead",
  "FkIfZero",
  "IfSizeBetween",
  "IfEmpty",
  "SeekScan",
  "SorterCompare",
  "Program",
  "Init",
  "IsTrue",
  "OffsetLimit",
]);
/**
 * Ops after which the program does not go on to the next op (OP_Return with P3 set does,
 * after a subroutine entered in line).
 */
const terminators = new Set(["Goto", "Halt", "Return", "Jump", "EndCoroutine", "Init"]);
/** OPFLAG_NCHANGE: the write counts as a change (P5 of OP_Insert, P2 of OP_Delete). */
const NCHANGE = 0x01;
/** OPFLAG_LASTROWID on OP_Insert: the insert sets last_insert_rowid() (not an update). */
const LASTROWID = 0x20;
/** OPFLAG_P2ISREG on OP_OpenWrite: the root page is in a register (a b-tree made just now). */
const P2ISREG = 0x10;

/** A statement's program, analysed once; `measure` turns one run's facts into the counts. */
export class Program {
  private cursors = new Map<number, { at: number; cursor: Cursor }[]>();
  private loops: Loop[] = [];
  private loopAtHead = new Map<number, Loop>();
  private loopEnds = new Set<number>();
  /** Code that runs only in cases that do not arise here (pending FK violations...). */
  private skipped: [number, number][] = [];
  private once: [number, number][] = [];
  private resultRows: number[] = [];
  /** Ops no jump leads to and that follow an op that never goes on (dead code). */
  private dead = new Set<number>();
  private changeOps: number[] = [];
  private freqMemo = new Map<number, number>();
  private rangeMemo = new Map<Loop, { inRange: number; beyond: boolean } | undefined>();
  private walkMemo = new Map<Loop, Walk>();
  private facts?: RunFacts;
  /** The program reads and writes no row whatever the data (`SELECT 1`, most INSERTs). */
  readonly inert: boolean;

  constructor(private ops: Op[]) {
    const destroyed = new Set<number>();
    ops.forEach((op, at) => {
      const kind = this.openKind(op);
      if (kind) {
        const list = this.cursors.get(op.p1) ?? [];
        list.push({ at, cursor: { kind, root: kind === "new" ? -1 : op.p2 } });
        this.cursors.set(op.p1, list);
      }
      if (op.opcode === "ResultRow") this.resultRows.push(at);
      if (this.isChange(op)) this.changeOps.push(at);
      if (op.opcode === "Destroy") destroyed.add(op.p2);
      // A parent table's foreign-key bookkeeping runs only while a violation is pending.
      if (op.opcode === "FkIfZero" && op.p2 > at) this.skipped.push([at + 1, op.p2 - 1]);
      // Moving root pages after a DROP happens only in auto_vacuum databases, which D1's
      // are not: the entries to move are never collected.
      if (op.opcode === "IfNot" && destroyed.has(op.p1) && op.p2 > at)
        this.skipped.push([at + 1, op.p2 - 1]);
      if (op.opcode === "Once" && op.p2 > at) this.once.push([at + 1, op.p2 - 1]);
    });
    // Init jumps to the program's tail (transactions, hoisted constants), which runs once and
    // jumps back to the start: not a loop.
    const tail = ops[0]?.opcode === "Init" && ops[0].p2 > 0 ? ops[0].p2 : ops.length;
    const targets = new Set<number>();
    for (const op of ops) {
      if (jumpsToP2.has(op.opcode)) targets.add(op.p2);
      if (op.opcode === "InitCoroutine") targets.add(op.p3);
      if (op.opcode === "Jump") [op.p1, op.p2, op.p3].forEach((t) => targets.add(t));
    }
    let live = true;
    ops.forEach((op, at) => {
      const before = ops[at - 1];
      const goesOn =
        before && !(terminators.has(before.opcode) && !(before.opcode === "Return" && before.p3));
      live = at === 0 || targets.has(at) || (live && goesOn);
      if (!live) this.dead.add(at);
    });
    ops.forEach((op, at) => {
      if (nextOps.has(op.opcode) && op.p2 <= at) {
        const head = this.findHead(op.p1, op.p2, at);
        const headOp = ops[head];
        let kind: Loop["kind"] = "scan";
        if (!headOp) kind = "goto";
        else if (headOp.opcode === "VFilter") kind = "vtab";
        else if (seekOps.has(headOp.opcode)) kind = "seek";
        else if (!this.isReal(op.p1, head)) kind = "eph";
        // An equality seek: SeekGE, then IdxGT on the same key, not reloaded in between.
        const equality =
          headOp?.opcode === "SeekGE" &&
          ops[op.p2]?.opcode === "IdxGT" &&
          ops[op.p2].p3 === headOp.p3 &&
          ops[op.p2].p4 === headOp.p4 &&
          ops.slice(head + 1, op.p2).every((o) => !loads.has(o.opcode));
        const loop: Loop = { head, start: op.p2, end: at, cursor: op.p1, kind, equality };
        const before = ops[head - 1];
        loop.jumpEntry = before?.opcode === "Goto" && before.p2 >= op.p2 && before.p2 <= at;
        if (kind === "scan" || kind === "seek") loop.range = this.rangeOf(loop);
        this.loops.push(loop);
        if (headOp) this.loopAtHead.set(head, loop);
        this.loopEnds.add(at);
      } else if (op.opcode === "Goto" && op.p2 < at && op.p2 > 0 && at < tail) {
        const first = ops[op.p2];
        const kind =
          first?.opcode === "Yield"
            ? "coroutine"
            : first?.opcode === "RowSetRead"
              ? "rowset"
              : "goto";
        const cursor = first?.p1 ?? -1;
        this.loops.push({ head: -1, start: op.p2, end: at, cursor, kind, equality: false });
      }
    });
    this.inert = !ops.some(
      (op, at) =>
        rewindOps.has(op.opcode) ||
        seekOps.has(op.opcode) ||
        nextOps.has(op.opcode) ||
        op.opcode === "SeekEnd" ||
        op.opcode === "SeekRowid" ||
        op.opcode === "NotExists" ||
        (op.opcode === "Count" && op.p3 === 0) ||
        op.opcode === "Clear" ||
        op.opcode === "VUpdate" ||
        this.isWrite(op, at),
    );
  }

  /**
   * Asks the catalog everything `measure` may ask of it, so that a write can have the
   * answers from before it changes the tables.
   */
  prefetch(catalog: Catalog, params: unknown[]): void {
    if (this.inert) return;
    this.facts = { returned: 0, changes: 0, totalChanges: 0, inserted: false, params, catalog };
    try {
      this.ops.forEach((op, at) => {
        const loop = this.loopAtHead.get(at);
        const root = this.isReal(op.p1, at) ? (this.cursorAt(op.p1, at)?.root ?? -1) : -1;
        if (loop?.range) {
          this.rangeCounts(loop);
          if (loop.kind === "seek") this.listWalk(loop, this.loopStarts(loop));
        } else if (loop?.kind === "scan" && root > 0 && !this.producesEveryRow(loop))
          catalog.entries(root, this.capOf(loop));
        else if (op.opcode === "Count" && root > 0) catalog.entries(root);
      });
    } finally {
      this.facts = undefined;
      this.freqMemo.clear();
      this.rangeMemo.clear();
      this.walkMemo.clear();
    }
  }

  /** rows_read and rows_written of one run. */
  measure(facts: RunFacts): { read: number; written: number } {
    if (this.inert) return { read: 0, written: 0 };
    this.facts = facts;
    try {
      return { read: Math.round(this.reads()), written: Math.round(this.writes()) };
    } finally {
      this.facts = undefined;
      this.freqMemo.clear();
      this.rangeMemo.clear();
      this.walkMemo.clear();
    }
  }

  private openKind(op: Op): CursorKind | null {
    switch (op.opcode) {
      case "OpenRead":
      case "OpenWrite":
      case "ReopenIdx":
        if (op.p3 !== 0) return "ephemeral"; // the temp schema (D1 allows none)
        if (op.opcode === "OpenWrite" && op.p5 & P2ISREG) return "new";
        // P4 is a table's column count, or an index's key description ("k(2,,)").
        return /^\d+$/.test(String(op.p4)) ? "table" : "index";
      case "OpenEphemeral":
      case "OpenAutoindex":
      case "OpenDup":
        return "ephemeral";
      case "SorterOpen":
        return "sorter";
      case "VOpen":
        return "vtab";
      case "OpenPseudo":
        return "pseudo";
    }
    return null;
  }

  /** Cursor `c` as last opened before `at` (or anywhere, if never before). */
  private cursorAt(c: number, at: number): Cursor | undefined {
    const list = this.cursors.get(c);
    if (!list) return undefined;
    let found: Cursor | undefined;
    for (const entry of list) if (entry.at <= at) found = entry.cursor;
    return found ?? list[list.length - 1].cursor;
  }

  private isReal(c: number, at: number): boolean {
    const kind = this.cursorAt(c, at)?.kind;
    return kind === "table" || kind === "index";
  }

  private isWrite(op: Op, at: number): boolean {
    if (op.opcode === "Insert" || op.opcode === "IdxInsert") {
      const kind = this.cursorAt(op.p1, at)?.kind;
      return kind === "table" || kind === "index" || kind === "new";
    }
    return op.opcode === "Delete" && (op.p2 & NCHANGE) !== 0 && this.isReal(op.p1, at);
  }

  private isChange(op: Op): boolean {
    return (
      (op.opcode === "Insert" && (op.p5 & NCHANGE) !== 0) ||
      (op.opcode === "Delete" && (op.p2 & NCHANGE) !== 0)
    );
  }

  /** The op positioning cursor `c` for a loop whose body is [start, end]. */
  private findHead(c: number, start: number, end: number): number {
    for (let at = start - 1; at >= 0; at--) {
      const op = this.ops[at];
      if (op.p1 === c && headOps.has(op.opcode) && (op.p2 > end || op.p2 === 0)) return at;
    }
    return -1;
  }

  /** The b-tree range a scan or seek loop walks, when its bounds are plain to see. */
  private rangeOf(loop: Loop): Loop["range"] {
    const cursor = this.cursorAt(loop.cursor, loop.head);
    if (!cursor || cursor.root <= 0) return undefined;
    const head = this.ops[loop.head];
    const descending = this.ops[loop.end].opcode === "Prev";
    // An index key is P4 registers from P3; a rowid, the one register P3.
    const keys = (op: Op): number[] => {
      const count = cursor.kind === "index" ? Number(op.p4) || 0 : 1;
      return Array.from({ length: count }, (_, i) => op.p3 + i);
    };
    const start = seekOps.has(head.opcode) ? { op: head.opcode, regs: keys(head) } : undefined;
    let end: { op: string; regs: number[]; at: number } | undefined;
    // The check ending the range comes first in the body: an index key compared with
    // IdxGT/GE/LT/LE, or the rowid loaded and compared with Gt/Ge/Lt/Le.
    for (let at = loop.start; at <= Math.min(loop.end, loop.start + 2); at++) {
      const op = this.ops[at];
      if (op.p2 <= loop.end) continue;
      if (indexChecks.has(op.opcode) && op.p1 === loop.cursor)
        end = { op: op.opcode, regs: keys(op), at };
      else if (valueChecks.has(op.opcode)) {
        const rowid = this.ops.slice(loop.start, at).find((o) => o.opcode === "Rowid");
        if (rowid && rowid.p1 === loop.cursor && rowid.p2 === op.p3)
          end = { op: op.opcode, regs: [op.p1], at };
      }
      if (end) break;
    }
    if (!start && !end) return undefined;
    if (start?.regs.length === 0 || end?.regs.length === 0) return undefined;
    return { root: cursor.root, descending, start, end };
  }

  /** What the catalog says of a loop's range: entries in it and whether one lies past it. */
  private rangeCounts(loop: Loop): { inRange: number; beyond: boolean } | undefined {
    if (this.rangeMemo.has(loop)) return this.rangeMemo.get(loop);
    let answer: { inRange: number; beyond: boolean } | undefined;
    const range = loop.range!;
    const values = (regs: number[], at: number) => {
      const out = regs.map((r) => this.registerValue(r, at));
      return out.some((v) => v === undefined) ? undefined : out;
    };
    const start = range.start && values(range.start.regs, loop.head);
    const end = range.end && values(range.end.regs, range.end.at);
    if ((!range.start || start) && (!range.end || end)) {
      answer = this.facts!.catalog.range({
        root: range.root,
        descending: range.descending,
        start: range.start && { op: range.start.op, values: start! },
        end: range.end && { op: range.end.op, values: end! },
        cap: this.capOf(loop),
      });
    }
    this.rangeMemo.set(loop, answer);
    return answer;
  }

  /** The value register `reg` holds at `at`, if a constant or a bound value put it there. */
  private registerValue(reg: number, at: number, depth = 0): unknown {
    // The writer closest before `at`; else one after it: SQLite hoists constants to the end
    // of the program, which runs first and jumps back to the start.
    let before = -1;
    let after = -1;
    this.ops.forEach((op, i) => {
      const dest = writesP2.has(op.opcode)
        ? op.opcode === "Null"
          ? op.p2 <= reg && reg <= Math.max(op.p2, op.p3)
          : op.opcode === "Copy"
            ? op.p2 <= reg && reg <= op.p2 + op.p3
            : op.p2 === reg
        : writesP3.has(op.opcode) && op.p3 === reg;
      if (!dest) return;
      if (i < at) before = i;
      else if (after < 0) after = i;
    });
    const writer = before >= 0 ? before : after;
    const op = this.ops[writer];
    if (!op || depth > 4) return undefined;
    switch (op.opcode) {
      case "Integer":
        return op.p1;
      case "Int64":
        return BigInt(String(op.p4));
      case "Real":
        return Number(op.p4);
      case "String8":
      case "String":
        return String(op.p4 ?? "");
      case "Null":
        return null;
      case "Variable": {
        const value = this.facts!.params[op.p1 - 1];
        return value === undefined ? undefined : value;
      }
      case "Copy":
      case "SCopy":
        return this.registerValue(op.p1 + (reg - op.p2), writer, depth + 1);
    }
    return undefined;
  }

  /** Leaf pages of the index a CREATE INDEX program (writing at `at`) has just filled. */
  private newIndexLeaves(at: number): number | undefined {
    // The program names it in the row it adds to sqlite_schema: 'index', name, table, ...
    const kind = this.ops.findIndex(
      (op, i) => i < at && op.opcode === "String8" && op.p4 === "index",
    );
    const name = this.ops[kind + 1];
    if (kind < 0 || name?.opcode !== "String8" || name.p2 !== this.ops[kind].p2 + 1)
      return undefined;
    return this.facts!.catalog.leafPages(String(name.p4));
  }

  /** The innermost loop whose body holds `at`. */
  private loopOf(at: number): Loop | undefined {
    let best: Loop | undefined;
    for (const loop of this.loops) {
      if (loop.start <= at && at <= loop.end && (!best || loop.start >= best.start)) best = loop;
    }
    return best;
  }

  private within(ranges: [number, number][], at: number): [number, number] | undefined {
    let best: [number, number] | undefined;
    for (const r of ranges) if (r[0] <= at && at <= r[1] && (!best || r[0] >= best[0])) best = r;
    return best;
  }

  /** How often the op at `at` runs (filters that skip part of a loop body aside). */
  private freq(at: number): number {
    const memo = this.freqMemo.get(at);
    if (memo !== undefined) return memo;
    this.freqMemo.set(at, 0); // breaks cycles in odd programs
    let value: number;
    const loop = this.loopOf(at);
    const once = this.within(this.once, at);
    if (this.dead.has(at) || this.within(this.skipped, at)) value = 0;
    else if (once && (!loop || once[0] > loop.start)) value = Math.min(1, this.freq(once[0] - 1));
    else if (loop) {
      value = this.iterations(loop);
      // The row past a range's end only meets the check that ends the loop.
      const end = loop.range?.end;
      if (end && at > end.at && value > 0) value -= this.loopStarts(loop) * this.walk(loop).exits;
    } else value = 1;
    this.freqMemo.set(at, value);
    return value;
  }

  /** Times a loop starts. */
  private loopStarts(loop: Loop): number {
    return loop.head >= 0 ? this.freq(loop.head) : this.freq(loop.start - 1);
  }

  /** Runs of a loop's body in all. */
  private iterations(loop: Loop): number {
    const heads = this.loopStarts(loop);
    if (heads === 0) return 0;
    return heads * this.walk(loop).landings;
  }

  /** Per start: rows the loop lands on, and how many of them only end it (past a range). */
  private walk(loop: Loop): Walk {
    let walk = this.walkMemo.get(loop);
    if (walk) return walk;
    walk = { landings: 0, exits: 0 };
    this.walkMemo.set(loop, walk); // breaks cycles in odd programs
    const heads = this.loopStarts(loop);
    walk = heads === 0 ? walk : this.walkOf(loop, heads);
    this.walkMemo.set(loop, walk);
    return walk;
  }

  private walkOf(loop: Loop, heads: number): Walk {
    const facts = this.facts!;
    const rows = (landings: number): Walk => ({ landings, exits: 0 });
    switch (loop.kind) {
      case "scan":
      case "seek": {
        const counts = heads === 1 && loop.range ? this.rangeCounts(loop) : undefined;
        if (counts) {
          if (loop.equality && counts.inRange === 0) return rows(0);
          return this.stopped(loop, counts.inRange, counts.beyond);
        }
        if (loop.kind === "scan" && !loop.range?.end) {
          // A scan that returns or changes every row it visits has visited what it produced.
          const produced = heads === 1 && this.producesEveryRow(loop);
          if (produced) return rows(this.outputCount(loop)!);
          const root = this.cursorAt(loop.cursor, loop.head)?.root ?? -1;
          const entries = root > 0 ? facts.catalog.entries(root, this.capOf(loop)) : 0;
          return this.stopped(loop, entries, false);
        }
        const listed = loop.kind === "seek" ? this.listWalk(loop, heads) : undefined;
        if (listed) return listed;
        // Without the catalog's answer (a seek for each row of an outer loop): the rows it
        // produced, each search that found some reading one more past its end; a search for
        // a range reads a row even when it finds none.
        const out = this.outputCount(loop);
        if (out === undefined) return rows(1);
        const past = loop.range?.end ? Math.min(heads, out) : 0;
        const landings = loop.equality ? out + past : Math.max(out + past, heads);
        return { landings: landings / heads, exits: past / heads };
      }
      case "eph":
        return rows(this.ephemeralEntries(loop) / heads);
      case "vtab": {
        const out = this.outputCount(loop);
        return rows(out === undefined ? 1 : out / heads);
      }
      case "coroutine":
        return rows(this.coroutineRows(loop.cursor) ?? Math.max(facts.changes, facts.returned));
      case "rowset":
        return rows(facts.changes);
      case "goto":
        return rows(this.recursionRows(loop) ?? 1);
    }
  }

  /**
   * A recursive CTE's loop: it takes the first row of its queue (OP_Rewind) each time, and
   * once more to find the queue empty. Its rows go to a coroutine whose consumer says how
   * many there were (rows inserted or returned), when it neither filters nor aggregates them.
   */
  private recursionRows(loop: Loop): number | undefined {
    const first = this.ops[loop.start];
    if (first?.opcode !== "Rewind" || this.isReal(first.p1, loop.start)) return undefined;
    const yieldOp = this.ops.slice(loop.start, loop.end).find((op) => op.opcode === "Yield");
    if (!yieldOp) return undefined;
    const consumer = this.loops.find((l) => l.kind === "coroutine" && l.cursor === yieldOp.p1);
    if (!consumer || this.filtered(consumer)) return undefined;
    for (let at = consumer.start; at <= consumer.end; at++)
      if (this.ops[at].opcode === "AggStep") return undefined;
    return Math.max(this.facts!.changes, this.facts!.returned) + 1;
  }

  /**
   * A seek for each value of an `IN (...)` list of constants or bound values: the catalog
   * counts each one's range.
   */
  private listWalk(loop: Loop, heads: number): Walk | undefined {
    const range = loop.range;
    if (!loop.equality || !range?.start || range.start.regs.length !== 1) return undefined;
    const [reg] = range.start.regs;
    let column: Op | undefined;
    for (let at = loop.head - 1; at >= 0 && !column; at--) {
      const op = this.ops[at];
      if (op.opcode === "Column" && op.p3 === reg) column = op;
      else if (op.opcode !== "Affinity" && op.opcode !== "IsNull" && op.p2 === reg) return;
      if (this.loopAtHead.has(at)) break;
    }
    const values = column && column.p2 === 0 ? this.listValues(column.p1) : undefined;
    if (!values || values.length !== heads) return undefined;
    let landings = 0;
    let exits = 0;
    for (const value of values) {
      const counts = this.facts!.catalog.range({
        root: range.root,
        descending: range.descending,
        start: { op: range.start.op, values: [value] },
        end: range.end && { op: range.end.op, values: [value] },
      });
      if (!counts) return undefined;
      if (counts.inRange === 0) continue;
      landings += counts.inRange + (counts.beyond ? 1 : 0);
      exits += counts.beyond ? 1 : 0;
    }
    return { landings: landings / heads, exits: exits / heads };
  }

  /**
   * The distinct values an `IN (...)` list puts in ephemeral index `c`, one record of one
   * value each, all constants or bound values (NULLs left out: they match nothing).
   */
  private listValues(c: number): unknown[] | undefined {
    const values: unknown[] = [];
    const seen = new Set<string>();
    for (const [at, op] of this.ops.entries()) {
      if (op.p1 !== c || !/^(IdxInsert|Insert|SorterInsert)$/.test(op.opcode)) continue;
      const record = this.ops[at - 1];
      if (this.loopOf(at) || record?.opcode !== "MakeRecord" || record.p2 !== 1) return undefined;
      if (record.p3 !== op.p2) return undefined;
      const value = this.registerValue(record.p1, at - 1);
      if (value === undefined) return undefined;
      const key = typeof value === "bigint" ? `${value}n` : JSON.stringify(value);
      if (value === null || seen.has(key)) continue;
      seen.add(key);
      values.push(value);
    }
    return values;
  }

  /** NULLs an `IN (...)` list puts in ephemeral index `c` (they are entries too). */
  private listNulls(c: number): number {
    let nulls = 0;
    for (const [at, op] of this.ops.entries()) {
      if (op.p1 !== c || op.opcode !== "IdxInsert") continue;
      const record = this.ops[at - 1];
      if (record?.opcode === "MakeRecord" && this.registerValue(record.p1, at - 1) === null)
        nulls++;
    }
    return Math.min(nulls, 1);
  }

  /**
   * Rows a loop over `inRange` entries (and one past them, if `beyond`) lands on, after a
   * one-row exit or a LIMIT.
   */
  private stopped(loop: Loop, inRange: number, beyond: boolean): Walk {
    const all: Walk = { landings: inRange + (beyond ? 1 : 0), exits: beyond ? 1 : 0 };
    if (this.takesOne(loop))
      return { landings: Math.min(all.landings, 1), exits: inRange === 0 ? all.exits : 0 };
    const limit = this.limitOf(loop);
    if (!limit) return all;
    const wanted = limit.limit + limit.offset;
    // Without a filter every entry counts towards the LIMIT, which ends the loop on the
    // last one it takes; with one, the loop ended after the last row it returned.
    if (!this.filtered(loop)) return inRange >= wanted ? { landings: wanted, exits: 0 } : all;
    const returned = this.facts!.returned;
    if (this.outputs(loop) === "rows" && returned >= limit.limit)
      return { landings: Math.min(all.landings, returned + limit.offset), exits: 0 };
    return all;
  }

  /** How many entries `stopped` needs counted at most (so a LIMIT 10 never counts 1M). */
  private capOf(loop: Loop): number | undefined {
    if (this.takesOne(loop)) return 1;
    const limit = this.limitOf(loop);
    if (!limit) return undefined;
    if (!this.filtered(loop)) return limit.limit + limit.offset;
    const returned = this.facts!.returned;
    if (this.outputs(loop) === "rows" && returned >= limit.limit) return returned + limit.offset;
    return undefined;
  }

  /** The loop itself returns or changes each row, with no filter, LIMIT or early exit. */
  private producesEveryRow(loop: Loop): boolean {
    // ...and nothing else in the program returns or changes rows (UNION ALL returns from two).
    const own = (at: number) => this.loopOf(at) === loop;
    const outputs = this.outputs(loop) === "rows" ? this.resultRows : this.changeOps;
    if (outputs.length === 0 || !outputs.every(own)) return false;
    return !this.filtered(loop) && !this.takesOne(loop) && !this.limitOf(loop);
  }

  /** min()/max() and the like take the first row and leave. */
  private takesOne(loop: Loop): boolean {
    for (let at = loop.start; at < loop.end; at++) {
      const op = this.ops[at];
      if (op.opcode === "Goto" && op.p2 > loop.end) return true;
    }
    return false;
  }

  /** A condition in the body skips rows (jumping on, to further in the body). */
  private filtered(loop: Loop): boolean {
    for (let at = loop.start; at < loop.end; at++) {
      const op = this.ops[at];
      if (filters.has(op.opcode) && op.p2 > at && op.p2 <= loop.end) return true;
    }
    return false;
  }

  /** What the loop produces, if it holds the statement's result rows or its changes. */
  private outputs(loop: Loop): "rows" | "changes" | undefined {
    const inside = (at: number) => loop.start <= at && at <= loop.end;
    if (this.resultRows.some(inside)) return "rows";
    if (this.changeOps.some(inside)) return "changes";
    return undefined;
  }

  private outputCount(loop: Loop): number | undefined {
    const kind = this.outputs(loop);
    if (kind === "rows") return this.facts!.returned;
    if (kind === "changes") return this.facts!.changes;
    return undefined;
  }

  /** LIMIT (and OFFSET) of a loop that may stop early, from constants or bound values. */
  private limitOf(loop: Loop): { limit: number; offset: number } | undefined {
    let limit: number | undefined;
    let offset = 0;
    for (let at = loop.start; at <= loop.end; at++) {
      const op = this.ops[at];
      if (op.opcode === "DecrJumpZero" && op.p2 > loop.end) {
        const value = Number(this.registerValue(op.p1, at));
        if (Number.isFinite(value)) limit = value;
      }
      if (op.opcode === "IfPos" && op.p2 <= loop.end && op.p3 === 1) {
        const value = Number(this.registerValue(op.p1, loop.head));
        if (Number.isFinite(value)) offset = value;
      }
    }
    return limit === undefined ? undefined : { limit, offset };
  }

  /** Rows an INSERT's VALUES list yields (each row is one Yield). */
  private coroutineRows(reg: number): number | undefined {
    const init = this.ops.findIndex((op) => op.opcode === "InitCoroutine" && op.p1 === reg);
    if (init < 0) return undefined;
    let yields = 0;
    for (let at = init + 1; at < this.ops[init].p2; at++) {
      const op = this.ops[at];
      if (nextOps.has(op.opcode) || (op.opcode === "Goto" && op.p2 < at)) return undefined;
      if (op.opcode === "Yield" && op.p1 === reg) yields++;
    }
    return yields;
  }

  /** Entries an ephemeral table or sorter holds when its loop starts. */
  private ephemeralEntries(loop: Loop): number {
    let aggregates = false;
    for (let at = loop.start; at <= loop.end; at++)
      if (this.ops[at].opcode === "AggStep") aggregates = true;
    const outputs = this.outputs(loop);
    const filtered = this.filtered(loop);
    // Sorted output and RETURNING return every entry; an UPDATE's or DELETE's rows to change
    // (collected first) are all changed.
    if (!aggregates && !filtered && outputs === "rows") return this.facts!.returned;
    if (!filtered && outputs === "changes") return this.facts!.changes;
    const cursor = this.cursorAt(loop.cursor, loop.head);
    const listed = cursor?.kind === "ephemeral" ? this.listValues(loop.cursor) : undefined;
    if (listed) return listed.length + this.listNulls(loop.cursor);
    let entries = 0;
    let looped = false;
    this.ops.forEach((op, at) => {
      const inserts =
        op.opcode === "IdxInsert" || op.opcode === "Insert" || op.opcode === "SorterInsert";
      if (!inserts || op.p1 !== loop.cursor || this.cursorAt(op.p1, at) !== cursor) return;
      entries += this.freq(at);
      if (this.loopOf(at)) looped = true;
    });
    // Values gathered by a loop (IN (SELECT ...)) lose their duplicates in the ephemeral
    // index: count what came out of it, as each value found a row.
    if (looped && outputs === "rows" && !aggregates) return this.facts!.returned;
    return entries;
  }

  private reads(): number {
    const facts = this.facts!;
    let read = 0;
    this.ops.forEach((op, at) => {
      const loop = this.loopAtHead.get(at);
      const f = this.freq(at);
      if (f === 0) return;
      if (loop) {
        // The positioning op counts even when it finds no row, except an equality seek's.
        const body = this.iterations(loop);
        if (loop.jumpEntry) read += Math.max(0, body - f);
        else read += loop.kind === "vtab" || loop.equality ? body : Math.max(body, f);
        return;
      }
      if (this.loopEnds.has(at)) return;
      if (op.opcode === "SeekRowid" || op.opcode === "NotExists") read += f;
      else if (seekOps.has(op.opcode)) {
        // A seek for one row (a unique index): an equality seek counts if it found it, which
        // (in a join) each row returned shows.
        const equality = op.opcode === "SeekGE" && this.ops[at + 1]?.opcode === "IdxGT";
        read += equality ? Math.min(f, Math.max(facts.returned, facts.changes)) : f;
      } else if (op.opcode === "Last" && this.ops[at - 1]?.opcode === "IfNotZero") {
        // ORDER BY ... LIMIT keeps the best rows in a bounded table: each row past the limit
        // looks at its last entry.
        read += Math.max(0, f - facts.returned);
      } else if (op.opcode === "SeekEnd") {
        // Appending to a new index (CREATE INDEX) seeks only when the cursor is not at the
        // end: for the first two entries, then twice more for each leaf page after the first
        // but one less (as measured against workerd's SQLite).
        const leaves = f > 2 ? this.newIndexLeaves(at) : undefined;
        read += leaves === undefined || leaves <= 1 ? Math.min(f, 2) : Math.min(f, 2 * leaves - 1);
      } else if (rewindOps.has(op.opcode)) read += f;
      else if (op.opcode === "Count" && op.p3 === 0 && this.isReal(op.p1, at)) {
        const root = this.cursorAt(op.p1, at)?.root ?? -1;
        if (root > 0) read += f * facts.catalog.entries(root);
      }
    });
    return read;
  }

  private writes(): number {
    const facts = this.facts!;
    let other = 0;
    let clears = 0;
    // Each change op (an OP_Insert or OP_Delete counted as a change) ends one way of changing
    // a row: with the index entries written just before it. An upsert has two, its insert
    // (which sets the last rowid) and its update.
    const paths: { writes: number; inserts: boolean }[] = [];
    let pending = 0;
    const changeLoops = new Set(this.changeOps.map((at) => this.loopOf(at)));
    this.ops.forEach((op, at) => {
      if (op.opcode === "Clear" && op.p3 !== 0) clears++;
      if (this.dead.has(at) || !this.isWrite(op, at)) return;
      const root = this.cursorAt(op.p1, at)?.root;
      if (this.changeOps.includes(at)) {
        paths.push({
          writes: pending + 1,
          inserts: op.opcode === "Insert" && !!(op.p5 & LASTROWID),
        });
        pending = 0;
      } else if (this.changeOps.length > 0 && root !== 1 && changeLoops.has(this.loopOf(at))) {
        // The statement's own index entries, written once per changed row.
        pending++;
      } else other += this.freq(at);
    });
    if (paths.length === 0 && clears === 0) return other;
    let perRow = 1;
    if (paths.length > 0) {
      const taken =
        paths.some((p) => p.inserts) && paths.some((p) => !p.inserts)
          ? paths.filter((p) => p.inserts === facts.inserted)
          : paths;
      perRow = taken.reduce((sum, p) => sum + p.writes, 0) / taken.length;
    }
    // Rows changed by triggers and foreign-key actions: one write each (their programs are
    // not part of this one's EXPLAIN).
    const nested = Math.max(0, facts.totalChanges - facts.changes);
    return facts.changes * perRow + nested + other;
  }
}

/** A Program from EXPLAIN's rows (`addr, opcode, p1, p2, p3, p4, p5, comment`). */
export function programOf(rows: Record<string, unknown>[]): Program {
  return new Program(
    rows.map((r) => ({
      opcode: String(r.opcode),
      p1: Number(r.p1),
      p2: Number(r.p2),
      p3: Number(r.p3),
      p4: r.p4,
      p5: Number(r.p5),
    })),
  );
}
