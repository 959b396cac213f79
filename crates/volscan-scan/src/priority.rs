//! How gently scans share the machine: the CPU niceness and I/O class that
//! the native walk's threads and the external tools run with.
//!
//! Both are set per thread (Linux keeps niceness and I/O priority per
//! task): on each walk worker when it starts, and in an external tool's
//! process between `fork` and `exec`. The thread that asks for a scan is
//! never changed, so the server's own threads keep their priority. A
//! setting the kernel refuses is left as it was; a scan never fails for it.

/// The I/O scheduling class of scan I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoClass {
    /// Only disk time nobody else wants, where the I/O scheduler honours
    /// classes (BFQ; mq-deadline and `none` largely ignore it).
    Idle,
    /// The kernel's default class, left as it is.
    BestEffort,
}

/// The priority scans run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// The niceness scans run at, 0 (unchanged) to 19 (lowest CPU
    /// priority); a server already nicer than this stays as nice.
    pub nice: u8,
    /// The I/O class.
    pub io_class: IoClass,
}

impl Priority {
    /// Scans at the same priority as the server.
    pub const UNCHANGED: Priority = Priority { nice: 0, io_class: IoClass::BestEffort };

    /// The default of a server: niceness 10 and the idle I/O class.
    pub const GENTLE: Priority = Priority { nice: 10, io_class: IoClass::Idle };

    /// Applies this priority to the calling thread only. Async-signal-safe
    /// (two system calls), so it may run in a child between fork and exec.
    pub(crate) fn apply_to_current_thread(self) {
        let nice = i32::from(self.nice.min(19));
        // `None`: the calling thread (Linux's getpriority and setpriority act per task).
        if nice > 0 && rustix::process::getpriority_process(None).is_ok_and(|now| now < nice) {
            let _ = rustix::process::setpriority_process(None, nice);
        }
        if self.io_class == IoClass::Idle {
            const IOPRIO_WHO_PROCESS: libc::c_long = 1;
            const IOPRIO_CLASS_IDLE: libc::c_long = 3;
            const IOPRIO_CLASS_SHIFT: u32 = 13;
            // SAFETY: ioprio_set takes three integers and touches no memory of
            // ours; `0` names the calling thread.
            let _ = unsafe {
                libc::syscall(
                    libc::SYS_ioprio_set,
                    IOPRIO_WHO_PROCESS,
                    0 as libc::c_long,
                    IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
                )
            };
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::GENTLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The niceness and I/O priority of the calling thread, from the kernel.
    fn current() -> (i32, libc::c_long) {
        let nice = rustix::process::getpriority_process(None).unwrap();
        // SAFETY: ioprio_get takes two integers and touches no memory of ours.
        let io =
            unsafe { libc::syscall(libc::SYS_ioprio_get, 1 as libc::c_long, 0 as libc::c_long) };
        (nice, io)
    }

    #[test]
    fn a_priority_changes_only_the_thread_it_is_applied_on() {
        let before = current();
        let inside = std::thread::spawn(|| {
            Priority::GENTLE.apply_to_current_thread();
            current()
        })
        .join()
        .unwrap();
        assert_eq!(inside.0, before.0.max(10), "niceness 10 (or the spawner's, if nicer)");
        assert_eq!(inside.1 >> 13, 3, "the idle I/O class");
        assert_eq!(current(), before, "the calling thread is untouched");
        let unchanged = std::thread::spawn(|| {
            Priority::UNCHANGED.apply_to_current_thread();
            current()
        })
        .join()
        .unwrap();
        assert_eq!(unchanged, before);
    }
}
