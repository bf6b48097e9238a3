// What opening a segment (a channel's, or a namespace's group table) needs on the TypeScript side
// whatever its kind: the trust options checked and laid out for the core, and the core's report of
// a failed open (core/src/ffi.rs `open_report`) read back and turned into the error that says what
// was found and what to do. The rule itself lives in core/src/segment.rs ("Trust").

import { OpenReport as Report } from "../ffi/abi.ts";
import { ForeignReason } from "../ffi/status.ts";
import { ForeignSegmentError, InvalidOptionError } from "./errors.ts";

/** Options of every call that opens a segment that may already exist. */
export interface TrustOptions {
  /**
   * Permission bits of a segment this call creates, and the most an existing one may grant: a
   * segment whose mode has a bit outside these is refused (ForeignSegmentError). Default 0o600.
   */
  permissions?: number;
  /**
   * Owners (uids) whose segments are accepted besides the caller's own and root's, for channels
   * shared between users. Default none.
   */
  trustedOwners?: readonly number[];
}

/** Trust options checked, in the form the core takes. */
export interface Trust {
  permissions: number;
  owners: Uint32Array;
}

/** @internal Checks `permissions` and `trustedOwners`. */
export function trustOf(options: TrustOptions): Trust {
  const permissions = options.permissions ?? 0o600;
  if (!Number.isInteger(permissions) || permissions < 0 || permissions > 0o777) {
    throw new InvalidOptionError(`permissions must be an integer from 0 to 0o777, not ${permissions}`);
  }
  const owners = options.trustedOwners ?? [];
  if (
    !Array.isArray(owners) || owners.some((uid) => !Number.isInteger(uid) || uid < 0 || uid > 0xffff_fffe)
  ) {
    throw new InvalidOptionError(`trustedOwners must be an array of uids (integers >= 0), not ${owners}`);
  }
  return { permissions, owners: Uint32Array.from(owners) };
}

/** A failed open, as the core reported it. */
export interface OpenReport {
  status: number;
  detail: number;
  /** The object that was opened at the name, when one was. */
  found?: { owner: number; mode: number; size: number; modified: Date };
}

/** @internal A buffer for the core's report of a failed open. */
export function reportBuffer(): Int32Array {
  return new Int32Array(Report.LENGTH);
}

/** @internal Reads the core's report (see `reportBuffer`). */
export function readReport(err: Int32Array): OpenReport {
  const status = err[Report.STATUS], detail = err[Report.DETAIL];
  if (err[Report.FOUND] !== 1) return { status, detail };
  return {
    status,
    detail,
    found: {
      owner: err[Report.OWNER] >>> 0,
      mode: err[Report.MODE] >>> 0,
      size: (err[Report.SIZE_HI] >>> 0) * 2 ** 32 + (err[Report.SIZE_LO] >>> 0),
      modified: new Date((err[Report.MTIME] >>> 0) * 1000),
    },
  };
}

function octal(bits: number): string {
  return `0${(bits & 0o7777).toString(8).padStart(3, "0")}`;
}

function fileType(mode: number): string {
  const types: Record<number, string> = {
    0o010000: "a FIFO",
    0o020000: "a character device",
    0o040000: "a directory",
    0o060000: "a block device",
    0o140000: "a socket",
  };
  return types[mode & 0o170000] ?? "not a regular file";
}

/**
 * @internal The ForeignSegmentError for a report with status ERR_FOREIGN: `where` is the path,
 * `elsewhere` how to get out of the way (another name or prefix).
 */
export function foreignError(
  report: OpenReport,
  where: string,
  trust: Trust,
  elsewhere: string,
): ForeignSegmentError {
  const f = report.found;
  const mode = f ? octal(f.mode) : "?";
  const owner = f ? `${f.owner}` : "?";
  const left = "ferry left it untouched";
  switch (report.detail) {
    case ForeignReason.SYMLINK:
      return new ForeignSegmentError(
        `${where} is a symbolic link: ferry never follows one in /dev/shm, where anyone can make one ` +
          `(${left}). Remove it, or ${elsewhere}.`,
      );
    case ForeignReason.OWNER:
      return new ForeignSegmentError(
        `${where} belongs to uid ${owner} (mode ${mode}), not to you or root: anyone can create files in ` +
          `/dev/shm, so ferry will not use it (${left}). If that user shares the channel with you on ` +
          `purpose, open it with trustedOwners: [${owner}] (and permissions covering ${mode}); otherwise ` +
          `remove it (it may be another user's trap) or ${elsewhere}.`,
      );
    case ForeignReason.MODE: {
      const wanted = octal(trust.permissions);
      const odd = f !== undefined && (f.mode & 0o7000) !== 0;
      return new ForeignSegmentError(
        odd
          ? `${where} has mode ${mode}, with bits outside 0777 (setuid, setgid or sticky) that no ferry ` +
            `segment has (${left}); remove it or chmod ${wanted} it.`
          : `${where} (uid ${owner}) has mode ${mode}, which grants more than your permissions ${wanted}: ` +
            `other users may read or write it (${left}). If that is intended, open it with ` +
            `permissions: 0o${(f!.mode & 0o777).toString(8)}; otherwise chmod ${wanted} it, or remove it.`,
      );
    }
    default:
      return new ForeignSegmentError(
        `${where} is ${f ? `${fileType(f.mode)} (uid ${owner}, mode ${mode})` : "not a regular file"}, ` +
          `not a shared-memory segment ferry made (${left}). Remove it, or ${elsewhere}.`,
      );
  }
}

/** @internal The text of a TimeoutError for a segment another process is still building (ERR_BUILDING). */
export function buildingMessage(what: string, builderPid: number, timeout: number): string {
  const who = builderPid > 0 ? `another process (pid ${builderPid})` : "another process";
  const cont = builderPid > 0 ? ` (kill -CONT ${builderPid})` : "";
  return `${what} is being built by ${who} and was not ready within ${timeout} ms: that process may be ` +
    `stopped${cont} or very slow. Raise timeout, or remove it once its builder is gone for good.`;
}
