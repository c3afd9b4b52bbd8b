//! The worker's confinement, once its engine is loaded and before it reads a model: ONNX
//! Runtime and tract are native code parsing bytes a guest chose, so whatever they are made to
//! do, the worker can open no file, make no socket, run no program and trace no process.
//!
//! A seccomp allow-list (the `seccompiler` crate): what an engine computing on memory needs
//! (memory, threads, futexes, clocks, its pipes) and nothing else; any other system call
//! fails with `EPERM`, so a library that tries gets an error it reports, and the call ends
//! with it. Its working directory is an empty folder that no longer exists (made, entered,
//! removed), so even a relative path names nothing.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot make an empty working directory: {0}")]
    Directory(std::io::Error),
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccompiler::Error),
    #[error("seccomp: {0}")]
    Filter(#[from] seccompiler::BackendError),
    #[error("this architecture has no seccomp allow-list here")]
    Architecture,
}

/// Enters an empty, removed directory and installs the allow-list on every thread.
pub fn confine() -> Result<(), ConfineError> {
    enter_empty_directory().map_err(ConfineError::Directory)?;
    seccompiler::apply_filter_all_threads(&allow_list()?)?;
    seccompiler::apply_filter_all_threads(&clone3_unimplemented()?)?;
    Ok(())
}

fn enter_empty_directory() -> std::io::Result<()> {
    let mut template = *b"/tmp/prelabel-worker-XXXXXX\0";
    // SAFETY: mkdtemp rewrites the X's of the NUL-terminated template we own.
    let made = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    let path = std::ffi::CStr::from_bytes_until_nul(&template)
        .map_err(std::io::Error::other)?
        .to_str()
        .map_err(std::io::Error::other)?
        .to_string();
    std::env::set_current_dir(&path)?;
    std::fs::remove_dir(&path)
}

fn arch() -> Result<TargetArch, ConfineError> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err(ConfineError::Architecture)
    }
}

/// The system calls the worker may always make.
const ALWAYS: &[i64] = &[
    // Its pipes to the host, and the executor's own descriptors.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_ppoll,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    // Memory (its size bounded by `RLIMIT_DATA`, which the host sets).
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // Threads (only threads: see `clone` below) and their synchronisation.
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    // Time and randomness.
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
];

/// The system calls the worker may make, some only with the arguments named.
fn allow_list() -> Result<BpfProgram, ConfineError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in ALWAYS {
        rules.insert(call, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    for call in [libc::SYS_poll, libc::SYS_epoll_wait, libc::SYS_fstat] {
        rules.insert(call, Vec::new());
    }
    // A call allowed only where argument `index` compares so with `value`.
    let when = |index: u8, op: SeccompCmpOp, value: u64| -> Result<SeccompRule, ConfineError> {
        let condition = SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)?;
        Ok(SeccompRule::new(vec![condition])?)
    };
    let (thread, empty_path) = (libc::CLONE_THREAD as u64, libc::AT_EMPTY_PATH as u64);
    let conditional = [
        // A new thread, never a new process: `clone` only with CLONE_THREAD (glibc falls
        // back to it when `clone3`, whose flags a filter cannot see, fails: below).
        (
            libc::SYS_clone,
            when(0, SeccompCmpOp::MaskedEq(thread), thread)?,
        ),
        // `fstat` on a descriptor it holds (glibc spells it `fstatat(fd, "", AT_EMPTY_PATH)`),
        // never a path.
        (
            libc::SYS_newfstatat,
            when(3, SeccompCmpOp::MaskedEq(empty_path), empty_path)?,
        ),
        // Signals to itself only (`abort` raises SIGABRT with tgkill).
        (
            libc::SYS_tgkill,
            when(0, SeccompCmpOp::Eq, u64::from(std::process::id()))?,
        ),
        // Thread names, and more filters (which only take away: the second one below is
        // installed under this one); nothing else of prctl and seccomp.
        (
            libc::SYS_prctl,
            when(0, SeccompCmpOp::Eq, libc::PR_SET_NAME as u64)?,
        ),
        (
            libc::SYS_prctl,
            when(0, SeccompCmpOp::Eq, libc::PR_SET_NO_NEW_PRIVS as u64)?,
        ),
        (
            libc::SYS_seccomp,
            when(
                0,
                SeccompCmpOp::Eq,
                u64::from(libc::SECCOMP_SET_MODE_FILTER),
            )?,
        ),
        // Reading its limits, never raising them.
        (libc::SYS_prlimit64, when(2, SeccompCmpOp::Eq, 0)?),
    ];
    for (call, rule) in conditional {
        rules.entry(call).or_default().push(rule);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// `clone3` fails as "not implemented", so that glibc falls back to `clone`, whose flags a
/// filter can see. A second filter: of two errors the kernel returns the later filter's.
fn clone3_unimplemented() -> Result<BpfProgram, ConfineError> {
    let filter = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )?;
    Ok(filter.try_into()?)
}
