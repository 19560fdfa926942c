//! Exit codes, a contract scripts rely on. `docs/exit-codes.md` lists them.

/// Success: a plan with no changes, an apply that completed, a command that did its job.
pub const OK: u8 = 0;
/// An error before anything was changed: bad input, a refused plan, an AWS error while reading.
pub const ERROR: u8 = 1;
/// `plan --detailed-exitcode` found changes.
pub const CHANGES: u8 = 2;
/// An apply failed and every completed step was rolled back: the stack is as before.
pub const ROLLED_BACK: u8 = 3;
/// An apply failed and some steps are still in place. The journal lists which.
pub const INCOMPLETE: u8 = 4;
/// `verify` found a name that does not resolve to the private addresses of its endpoint.
pub const VERIFY_FAILED: u8 = 5;
/// Interrupted with a second Ctrl-C, leaving the journal for `--resume` or `rollback`.
pub const INTERRUPTED: u8 = 130;
