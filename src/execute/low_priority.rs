//! Maintenance work (erasures, tiering passes) on threads of lower CPU priority than the ones
//! serving queries, so that on a busy machine point reads keep their latency and the
//! maintenance takes the CPU they leave.

/// How much lower: CFS weighs a thread at nice 10 about a tenth of one at 0, so maintenance
/// still advances on a saturated machine (at nice 19 it would nearly stop, holding the locks
/// writes wait on).
const NICE: i32 = 10;

/// Runs `work` on a thread of its own at lower priority and waits for it (blocking).
pub fn run<T: Send>(work: impl FnOnce() -> T + Send) -> crate::error::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("asofdb-maint".into())
            .spawn_scoped(scope, || {
                lower_this_thread();
                work()
            })
            .map_err(|e| crate::error::Error::internal(format!("starting a maintenance thread: {e}")))?;
        Ok(thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Runs `work` on a thread of its own at lower priority; the returned future completes with
/// its result (the thread runs to its end even if the future is dropped).
pub async fn spawn<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> crate::error::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("asofdb-maint".into())
        .spawn(move || {
            lower_this_thread();
            let _ = done.send(work());
        })
        .map_err(|e| crate::error::Error::internal(format!("starting a maintenance thread: {e}")))?;
    result.await.map_err(|_| crate::error::Error::internal("a maintenance thread ended without its result"))
}

/// Linux keeps a nice value per thread (setpriority on the calling thread's id); elsewhere
/// this does nothing rather than lower the whole process.
fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread; a failure only leaves its priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
    }
}
