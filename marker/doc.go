// Package marker owns the drain marker, the file $HOME/.drain_request.json
// whose presence asks a quiesce gateway to stop starting new turns.
//
// The package only reports what the file says; it never decides lifecycle.
// It provides:
//
//   - [Write] and [Clear]: an atomic write and a compare-and-delete, both
//     serialised across processes by an advisory lock file
//     ($HOME/.drain_request.lock, flock(2) LOCK_EX) so that the HTTP server
//     and the CLI can act on the same home at once. Readers never lock.
//     Both refuse, with [ErrUnusable] and changing nothing, a marker path
//     (or lock file) that is not a regular file; a regular file with
//     corrupt content is replaced by Write and removed by Clear.
//   - [Read]: a never-failing, never-panicking, never-blocking read that
//     classifies the file as [Absent], [Active], [Contentless], [Stale] or
//     [Expired], and [Reader], which does the same and logs each stale,
//     expired or unusable marker once.
//   - [EpochOf] and [ProcessEpochOf] (cached), and [CurrentEpoch] and
//     [ProcessEpoch] without the error: the identity of this machine or
//     container instantiation ("<boot_id>:<starttime of pid 1>"), so a marker
//     that survived a restart of the machine reads as stale. When it cannot
//     be computed the error wraps [ErrNoEpoch] and names the file.
//   - [Watch]: a coalesced "reconcile now" signal driven by fsnotify on the
//     home directory, with a periodic poll as a fallback.
//
// # Reading rules
//
// A missing file is [Absent]. A file that is empty, larger than 1 MiB, not
// valid UTF-8, not JSON, not a JSON object, or an object whose known fields
// have the wrong JSON type is [Contentless]: it drains (fail safe) and never
// suppresses. So is anything at the marker path that is not a regular file
// (a directory, FIFO, socket, device, or a symlink, dangling or not: the
// marker is never followed through a symlink) or that cannot be read; such
// a marker is examined with lstat(2) only and never opened, so a FIFO never
// blocks a reader, and a [Reader] logs it once. Unknown extra fields are ignored, field names are matched
// exactly (case-sensitively), and a JSON null counts as a missing field. The
// "action" value is reported but not interpreted: any marker requests a drain.
//
// A marker without an "epoch" (or with an empty one), read by an instance
// whose own epoch is unknown (""), is legacy: it drains but never suppresses.
// A marker whose epoch differs from the reader's (both non-empty) is [Stale].
// A marker that is not stale but older than the maximum age (default
// [DefaultMaxAge]) is [Expired]; this applies to legacy and contentless
// markers too. Age is measured from "requested_at", or from the file's
// modification time when requested_at is missing, unparseable or later than
// the reader's clock. requested_at may be RFC 3339 or any form Python's
// datetime.isoformat writes and datetime.fromisoformat reads back: "T" or a
// space between date and time; the time to the hour, minute, second or any
// fraction of a second ("." or ","; kept to the nanosecond); "Z", an offset
// (±HH, ±HHMM, ±HH:MM, ±HH:MM:SS) or no zone at all (taken as UTC, as the
// upstream writer means it); or a date alone (midnight UTC). A
// contentless marker's age always comes from its modification time. So a
// corrupt, legacy or future-dated marker drains, but never for longer than the
// maximum age after it was last written.
//
// # Atomicity caveat
//
// Atomic replacement relies on rename(2) being atomic within one directory and
// on fsync of the file and its directory being honoured. This holds on local
// POSIX file systems (ext4, xfs, btrfs, tmpfs, APFS) but not on NFS and some
// other network or FUSE file systems, where a reader may see a torn or stale
// file and where flock(2) may not exclude other hosts. Network file systems
// also deliver no fsnotify events, so only the poll fallback of [Watch] sees
// changes there. Keep the home on a local file system.
//
// # Platforms
//
// Linux is the target. The epoch needs /proc; on macOS, when the proc root
// is "/proc" and it does not exist, the epoch is derived from the kernel boot
// time (sysctl kern.boottime), which changes on reboot. Anywhere else without
// a readable proc root the epoch is "", which disables the staleness check
// (markers are then honoured by presence and age only).
package marker
