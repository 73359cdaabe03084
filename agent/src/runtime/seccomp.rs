//! The `RuntimeDefault` seccomp profile (`securityContext.seccompProfile.type`): what
//! containerd's and Docker's default profile refuses a container, here as a deny list — every
//! other system call is allowed. Calls that reach outside the container (mounts, namespaces,
//! modules, the clock, the kernel's keyring, kexec, BPF, perf, another process's memory) fail
//! with EPERM, each unless the container holds the capability the default profile grants it
//! for (CAP_SYS_ADMIN for mounts and namespaces, CAP_SYS_TIME for the clock, …), as it does.
//! `clone3` fails with ENOSYS, so that C libraries fall back to `clone`, whose namespace flags
//! the kernel checks against the capabilities. Compiled with `seccompiler` (rust-vmm) and
//! installed by PID 1 just before it drops its privileges (`sys::seccomp`), as two filters: the
//! deny list, and `clone3`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// (system call, the capability that allows it — `None`: never allowed).
const DENIED: &[(i64, Option<&str>)] = &[
    (libc::SYS_acct, Some("CAP_SYS_PACCT")),
    (libc::SYS_add_key, None),
    (libc::SYS_bpf, Some("CAP_SYS_ADMIN")),
    (libc::SYS_clock_adjtime, Some("CAP_SYS_TIME")),
    (libc::SYS_clock_settime, Some("CAP_SYS_TIME")),
    (libc::SYS_settimeofday, Some("CAP_SYS_TIME")),
    (libc::SYS_adjtimex, Some("CAP_SYS_TIME")),
    (libc::SYS_init_module, Some("CAP_SYS_MODULE")),
    (libc::SYS_finit_module, Some("CAP_SYS_MODULE")),
    (libc::SYS_delete_module, Some("CAP_SYS_MODULE")),
    (libc::SYS_get_mempolicy, Some("CAP_SYS_NICE")),
    (libc::SYS_set_mempolicy, Some("CAP_SYS_NICE")),
    (libc::SYS_mbind, Some("CAP_SYS_NICE")),
    (libc::SYS_move_pages, Some("CAP_SYS_NICE")),
    (libc::SYS_ioperm, Some("CAP_SYS_RAWIO")),
    (libc::SYS_iopl, Some("CAP_SYS_RAWIO")),
    (libc::SYS_kcmp, Some("CAP_SYS_PTRACE")),
    (libc::SYS_process_vm_readv, Some("CAP_SYS_PTRACE")),
    (libc::SYS_process_vm_writev, Some("CAP_SYS_PTRACE")),
    (libc::SYS_kexec_file_load, Some("CAP_SYS_BOOT")),
    (libc::SYS_kexec_load, Some("CAP_SYS_BOOT")),
    (libc::SYS_reboot, Some("CAP_SYS_BOOT")),
    (libc::SYS_keyctl, None),
    (libc::SYS_request_key, None),
    (libc::SYS_lookup_dcookie, Some("CAP_SYS_ADMIN")),
    (libc::SYS_mount, Some("CAP_SYS_ADMIN")),
    (libc::SYS_umount2, Some("CAP_SYS_ADMIN")),
    (libc::SYS_pivot_root, Some("CAP_SYS_ADMIN")),
    (libc::SYS_fsopen, Some("CAP_SYS_ADMIN")),
    (libc::SYS_fsconfig, Some("CAP_SYS_ADMIN")),
    (libc::SYS_fsmount, Some("CAP_SYS_ADMIN")),
    (libc::SYS_fspick, Some("CAP_SYS_ADMIN")),
    (libc::SYS_move_mount, Some("CAP_SYS_ADMIN")),
    (libc::SYS_open_tree, Some("CAP_SYS_ADMIN")),
    (libc::SYS_setns, Some("CAP_SYS_ADMIN")),
    (libc::SYS_unshare, Some("CAP_SYS_ADMIN")),
    (libc::SYS_name_to_handle_at, Some("CAP_SYS_ADMIN")),
    (libc::SYS_open_by_handle_at, Some("CAP_DAC_READ_SEARCH")),
    (libc::SYS_nfsservctl, None),
    (libc::SYS_perf_event_open, Some("CAP_PERFMON")),
    (libc::SYS_quotactl, Some("CAP_SYS_ADMIN")),
    (libc::SYS_swapon, Some("CAP_SYS_ADMIN")),
    (libc::SYS_swapoff, Some("CAP_SYS_ADMIN")),
    (libc::SYS_sysfs, None),
    (libc::SYS__sysctl, None),
    (libc::SYS_syslog, Some("CAP_SYSLOG")),
    (libc::SYS_uselib, None),
    (libc::SYS_userfaultfd, Some("CAP_SYS_PTRACE")),
    (libc::SYS_ustat, None),
    (libc::SYS_vhangup, Some("CAP_SYS_TTY_CONFIG")),
];

/// The namespace flags of `clone` the profile refuses without CAP_SYS_ADMIN.
const NAMESPACE_FLAGS: &[i32] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The RuntimeDefault filters for a container holding `capabilities` (names, `CAP_…`): two
/// programs, both installed (the kernel runs every filter of a thread).
pub fn runtime_default(capabilities: &[String]) -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp on {}: {e}", std::env::consts::ARCH))?;
    let held = |cap: &str| capabilities.iter().any(|c| c == cap);
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .filter(|(_, allowed_by)| !allowed_by.is_some_and(held))
        .map(|(call, _)| (*call, Vec::new()))
        .collect();
    if !held("CAP_SYS_ADMIN") {
        // clone with a namespace flag (a user namespace needs no capability otherwise).
        let rules = NAMESPACE_FLAGS
            .iter()
            .map(|flag| {
                let flag = *flag as u64;
                let op = SeccompCmpOp::MaskedEq(flag);
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, op, flag)
                    .and_then(|c| SeccompRule::new(vec![c]))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("seccomp rule: {e}"))?;
        denied.insert(libc::SYS_clone, rules);
    }
    let filter = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp filter: {e}"))?;
    // clone3 answers ENOSYS (not EPERM) so that glibc and musl fall back to clone.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let clone3: BpfProgram = clone3
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp filter: {e}"))?;
    Ok(vec![program, clone3])
}

/// Installs `programs` for the calling thread and what it execs.
pub fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for program in programs {
        crate::sys::seccomp::install_filter(program).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_compiles_and_a_capability_lets_its_calls_through() {
        let none = runtime_default(&[]).expect("compiles");
        let admin = runtime_default(&["CAP_SYS_ADMIN".to_owned()]).expect("compiles");
        assert_eq!((none.len(), admin.len()), (2, 2));
        assert!(
            admin[0].len() < none[0].len(),
            "CAP_SYS_ADMIN lifts mount, unshare, setns, …"
        );
    }
}
