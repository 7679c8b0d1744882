//! A fault injector on tidelog's storage seam: it records the calls the engine makes on files
//! of one directory and makes a chosen one fail with `EIO`, as a failing device would.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tidelog::testing::{install, FaultInjector, Installed, IoCall, IoOp};

/// One call the engine made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: IoOp,
    pub path: PathBuf,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        write!(f, "{:?} {name}", self.op)
    }
}

#[derive(Debug, Default)]
struct State {
    trace: Vec<Call>,
    /// Fail the call that makes `seen` reach this count (counting only matching calls).
    fail_at: Option<usize>,
    /// Only calls of this kind count (and fail).
    only: Option<IoOp>,
    /// Keep failing every matching call after the first failure (a device that stays broken).
    sticky: bool,
    seen: usize,
    failed: Vec<Call>,
}

/// Records calls and fails the chosen one. Install with [`Faults::on`].
#[derive(Debug, Default)]
pub struct Faults {
    st: Mutex<State>,
}

impl Faults {
    /// A fresh injector for every call on a path inside `dir`; it does nothing until armed.
    pub fn on(dir: &Path) -> (Arc<Faults>, Installed) {
        let f = Arc::new(Faults::default());
        let guard = install(dir, f.clone());
        (f, guard)
    }

    /// Forget the calls recorded so far.
    pub fn clear_trace(&self) {
        self.st.lock().trace.clear();
    }

    /// The calls made since the last `clear_trace`.
    pub fn trace(&self) -> Vec<Call> {
        self.st.lock().trace.clone()
    }

    /// Fail the `n`-th call (0-based) from now, of kind `only` if given.
    pub fn fail_nth(&self, n: usize, only: Option<IoOp>) {
        let mut st = self.st.lock();
        st.fail_at = Some(n);
        st.only = only;
        st.sticky = false;
        st.seen = 0;
    }

    /// Fail every call of kind `op` from now on, until `heal`.
    pub fn break_op(&self, op: IoOp) {
        let mut st = self.st.lock();
        st.fail_at = Some(0);
        st.only = Some(op);
        st.sticky = true;
        st.seen = 0;
    }

    /// Stop failing calls.
    pub fn heal(&self) {
        let mut st = self.st.lock();
        st.fail_at = None;
        st.sticky = false;
    }

    /// The calls made to fail so far.
    pub fn failed(&self) -> Vec<Call> {
        self.st.lock().failed.clone()
    }
}

impl FaultInjector for Faults {
    fn before(&self, call: &IoCall<'_>) -> io::Result<()> {
        let mut st = self.st.lock();
        let c = Call { op: call.op, path: call.path.to_path_buf() };
        st.trace.push(c.clone());
        let Some(at) = st.fail_at else { return Ok(()) };
        if st.only.is_some_and(|op| op != call.op) {
            return Ok(());
        }
        let n = st.seen;
        st.seen += 1;
        if n == at || (st.sticky && n >= at) {
            if !st.sticky {
                st.fail_at = None;
            }
            st.failed.push(c);
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}
