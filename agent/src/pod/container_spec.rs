//! Translates a Kubernetes container (plus its image and pod) into what the runtime needs: the
//! process description ([`InitSpec`]) and cgroup settings. Pure apart from reading the image's
//! /etc/passwd and /etc/group for a named `User`, and the agent's capability bounding set for
//! a privileged container.

use std::path::{Path, PathBuf};

use crate::image::ResolvedImage;
use crate::runtime::cgroup_resources::{CgroupResources, CPU_PERIOD_US};
use crate::runtime::init_spec::DEFAULT_CAPABILITIES;
use crate::runtime::{BindMount, InitSpec, ProcessSpec};
use crate::spec::{resolve_command_with_env, Container, Pod, SpecError};

/// Where the container's writable layer, FIFOs and rootfs mountpoint live.
pub struct ContainerPaths {
    pub dir: PathBuf,
    pub stdout_fifo: PathBuf,
    pub stderr_fifo: PathBuf,
}

/// What the worker resolved for one container instance: its mounts (the pod's /etc files and
/// its volumes) and its environment (`envFrom` and `env`, without the image's).
pub struct ContainerInputs<'a> {
    pub mounts: &'a [BindMount],
    pub env: &'a [(String, String)],
}

/// Builds the process description of `container` of `pod`.
pub fn init_spec(
    id: String,
    pod: &Pod,
    container: &Container,
    field: &str,
    image: &ResolvedImage,
    paths: &ContainerPaths,
    inputs: &ContainerInputs<'_>,
) -> Result<InitSpec, SpecError> {
    let mut env: Vec<(String, String)> = image
        .config
        .env
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    set_env(&mut env, "HOSTNAME", &pod_hostname(pod));
    for (k, v) in inputs.env {
        set_env(&mut env, k, v);
    }
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let argv = resolve_command_with_env(
        &image.config.entrypoint,
        &image.config.cmd,
        &container.command,
        &container.args,
        &lookup,
    );
    if argv.is_empty() {
        return Err(SpecError::new(
            format!("{field}.command"),
            format!(
                "neither the container nor image {} gives a command",
                image.reference
            ),
        ));
    }
    let (uid, gid) = identity(pod, container, field, image)?;
    let sc = container.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if let Some(c) = sc.and_then(|s| s.capabilities.as_ref()) {
        let norm = |n: &String| {
            let up = n.to_ascii_uppercase();
            if up.starts_with("CAP_") {
                up
            } else {
                format!("CAP_{up}")
            }
        };
        let drop: Vec<String> = c.drop.iter().map(norm).collect();
        if drop.iter().any(|d| d == "CAP_ALL") {
            caps.clear();
        }
        caps.retain(|x| !drop.contains(x));
        for a in c.add.iter().map(norm) {
            if !caps.contains(&a) {
                caps.push(a);
            }
        }
    }
    if privileged {
        // Every capability the node gives its processes (the agent's bounding set: a node
        // that is itself a container may lack some).
        let node = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
        caps = node.iter().map(|c| c.to_string()).collect();
    }
    // fsGroup joins the supplemental groups, as kubelet does (it also owns volumes, which are
    // refused until the storage issue).
    let supplemental = pod
        .spec
        .security_context
        .as_ref()
        .map(|s| {
            let groups = s.supplemental_groups.iter().chain(&s.fs_group);
            groups.filter_map(|g| u32::try_from(*g).ok()).collect()
        })
        .unwrap_or_default();
    Ok(InitSpec {
        id,
        lower_dirs: image.layers.clone(),
        upper_dir: paths.dir.join("upper"),
        work_dir: paths.dir.join("work"),
        rootfs: paths.dir.join("rootfs"),
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        privileged,
        host_devices: Vec::new(),
        namespaces: Vec::new(),
        host_pid: pod.spec.host_pid,
        pid_namespace: None,
        cgroup_tasks: Vec::new(),
        cgroup_v2_dir: None,
        process: ProcessSpec {
            argv,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: container
                .working_dir
                .clone()
                .or_else(|| image.config.working_dir.clone().filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            uid,
            gid,
            additional_gids: supplemental,
            capabilities: caps,
            // Kubelet's rule: no_new_privs only when the pod asks for it (setuid programs
            // work in a container that says nothing).
            no_new_privs: !privileged
                && sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
            // A privileged container runs unconfined, as with containerd.
            seccomp_default: !privileged && seccomp_type(pod, container) == Some("RuntimeDefault"),
        },
        stdout_fifo: paths.stdout_fifo.clone(),
        stderr_fifo: paths.stderr_fifo.clone(),
        input: Default::default(),
        mounts: inputs.mounts.to_vec(),
        mount_template: None,
    })
}

/// The container's seccomp profile type: its own, else the pod's (none: Unconfined).
pub fn seccomp_type<'a>(pod: &'a Pod, c: &'a Container) -> Option<&'a str> {
    let own = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let pods = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    own.or(pods).map(|p| p.type_.as_str())
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// runAsUser/runAsGroup (container over pod), else the image's `User`.
fn identity(
    pod: &Pod,
    c: &Container,
    field: &str,
    image: &ResolvedImage,
) -> Result<(u32, u32), SpecError> {
    let psc = pod.spec.security_context.as_ref();
    let csc = c.security_context.as_ref();
    let user = csc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|s| s.run_as_user));
    let group = csc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|s| s.run_as_group));
    let (img_uid, img_gid) = image_user(image, field)?;
    let uid = match user {
        Some(u) => u32::try_from(u).map_err(|_| {
            SpecError::new(format!("{field}.securityContext.runAsUser"), "out of range")
        })?,
        None => img_uid,
    };
    let gid = match group {
        Some(g) => u32::try_from(g).map_err(|_| {
            SpecError::new(
                format!("{field}.securityContext.runAsGroup"),
                "out of range",
            )
        })?,
        None if user.is_some() && image.config.user.is_none() => 0,
        None => img_gid,
    };
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root));
    if non_root == Some(true) && uid == 0 {
        return Err(SpecError::new(
            format!("{field}.securityContext.runAsNonRoot"),
            "container would run as root (uid 0)",
        ));
    }
    Ok((uid, gid))
}

/// The image's `User` ("", "uid", "uid:gid", "name", "name:group") as numbers.
fn image_user(image: &ResolvedImage, field: &str) -> Result<(u32, u32), SpecError> {
    let Some(user) = image.config.user.as_deref().filter(|u| !u.is_empty()) else {
        return Ok((0, 0));
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let bad = |what: &str| {
        SpecError::new(
            format!("{field}.image"),
            format!("image {} user {user:?}: {what}", image.reference),
        )
    };
    let passwd = read_image_file(&image.layers, "etc/passwd");
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (
            n,
            lookup_db(&passwd, |f| f[2] == u).and_then(|f| f[3].parse().ok()),
        ),
        Err(_) => {
            let f = lookup_db(&passwd, |f| f[0] == u).ok_or_else(|| bad("no such user"))?;
            (
                f[2].parse().map_err(|_| bad("bad /etc/passwd"))?,
                f[3].parse().ok(),
            )
        }
    };
    let gid = match g {
        None => primary.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = read_image_file(&image.layers, "etc/group");
                let f = lookup_db(&group, |f| f[0] == g).ok_or_else(|| bad("no such group"))?;
                f[2].parse().map_err(|_| bad("bad /etc/group"))?
            }
        },
    };
    Ok((uid, gid))
}

/// The first `name:x:id:...` line of a passwd/group file matching `pred`.
fn lookup_db<'a>(text: &'a str, pred: impl Fn(&[&'a str]) -> bool) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && pred(f))
}

/// A file from the topmost layer that has it (whiteouts ignored: good enough for passwd).
fn read_image_file(layers: &[PathBuf], rel: &str) -> String {
    layers
        .iter()
        .rev()
        .map(|l| l.join(rel))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// cgroup settings of one container from its requests/limits.
pub fn container_resources(c: &Container, field: &str) -> Result<CgroupResources, SpecError> {
    let r = &c.resources;
    let cpu_req = match r.effective_request("cpu") {
        Some(q) => Some(
            q.millicores()
                .map_err(|e| e.at(&format!("{field}.resources.requests.cpu")))?,
        ),
        None => None,
    };
    let cpu_lim = match r.limits.get("cpu") {
        Some(q) => Some(
            q.millicores()
                .map_err(|e| e.at(&format!("{field}.resources.limits.cpu")))?,
        ),
        None => None,
    };
    let mem_lim = match r.limits.get("memory") {
        Some(q) => Some(
            q.bytes()
                .map_err(|e| e.at(&format!("{field}.resources.limits.memory")))?,
        ),
        None => None,
    };
    Ok(CgroupResources {
        cpu_shares: Some(shares_from_millis(cpu_req.unwrap_or(0))),
        cpu_quota_us: cpu_lim.map(quota_from_millis),
        memory_limit_bytes: mem_lim.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        pids_limit: None,
        // A privileged container may use every device of the node.
        restrict_devices: !c
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false),
    })
}

/// The pod cgroup: sums of the app containers (limits only if every container has one), and
/// the node's pod pids limit.
pub fn pod_resources(pod: &Pod, pids_limit: Option<i64>) -> Result<CgroupResources, SpecError> {
    let mut shares = 0u64;
    let mut quota: Option<i64> = Some(0);
    let mut mem: Option<i64> = Some(0);
    for (i, c) in pod.spec.containers.iter().enumerate() {
        let r = container_resources(c, &format!("spec.containers[{i}]"))?;
        shares += r.cpu_shares.unwrap_or(2);
        quota = quota.zip(r.cpu_quota_us).map(|(a, b)| a + b);
        mem = mem
            .zip(r.memory_limit_bytes)
            .map(|(a, b)| a.saturating_add(b));
    }
    Ok(CgroupResources {
        cpu_shares: Some(shares.max(2)),
        cpu_quota_us: quota,
        memory_limit_bytes: mem,
        pids_limit,
        restrict_devices: false,
    })
}

/// kubelet's MilliCPUToShares: 1 core = 1024 shares, at least 2.
pub fn shares_from_millis(millis: u64) -> u64 {
    (millis * 1024 / 1000).max(2)
}

/// kubelet's MilliCPUToQuota over a 100 ms period, at least 1 ms.
pub fn quota_from_millis(millis: u64) -> i64 {
    let q = millis * CPU_PERIOD_US / 1000;
    i64::try_from(q.max(1000)).unwrap_or(i64::MAX)
}

/// The pod's hostname: the node's with hostNetwork (the pod shares the node's UTS namespace),
/// else spec.hostname, else the pod name (Kubernetes' rule).
pub fn pod_hostname(pod: &Pod) -> String {
    if pod.spec.host_network {
        let node = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned());
        return node.unwrap_or_else(|_| "localhost".into());
    }
    pod.spec
        .hostname
        .clone()
        .unwrap_or_else(|| pod.metadata.name.clone())
}

/// The node's hosts file, the base of a hostNetwork pod's `/etc/hosts`.
const NODE_HOSTS: &str = "/etc/hosts";

/// kubelet's managed /etc/hosts (`managedHostsFileContent`) before the hostAliases: localhost
/// and the IPv6 names, then each pod IP with the pod's hostname — preceded by its FQDN
/// `<hostname>.<subdomain>.<ns>.svc.<domain>` when the pod has a `subdomain` (the name its
/// headless Service gives it in DNS). Without a pod IP (`--network none`) the hostname is
/// given 127.0.1.1, so it still resolves.
fn managed_hosts(pod: &Pod, hostname: &str, pod_ips: &[String], domain: &str) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let names = match pod.spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => {
            let domain = domain.trim_end_matches('.');
            let ns = &pod.metadata.namespace;
            format!("{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}")
        }
        None => hostname.to_string(),
    };
    if pod_ips.is_empty() {
        text.push_str(&format!("127.0.1.1\t{names}\n"));
    }
    for ip in pod_ips {
        text.push_str(&format!("{ip}\t{names}\n"));
    }
    text
}

/// The pod-level files bind-mounted into every container: /etc/hosts (kubelet's managed file
/// with the pod's names and `pod_ips`, or the node's file with hostNetwork, plus
/// hostAliases), /etc/hostname and /etc/resolv.conf (from the pod's dnsPolicy and dnsConfig,
/// see `crate::dns::resolv`).
pub fn pod_files(
    dir: &Path,
    pod: &Pod,
    hostname: &str,
    pod_ips: &[String],
    dns: &super::PodDnsSettings,
) -> std::io::Result<Vec<BindMount>> {
    std::fs::create_dir_all(dir)?;
    let mut hosts_text = if pod.spec.host_network {
        std::fs::read_to_string(NODE_HOSTS)?
    } else {
        managed_hosts(pod, hostname, pod_ips, &dns.cluster.domain)
    };
    if !pod.spec.host_aliases.is_empty() {
        if !hosts_text.is_empty() && !hosts_text.ends_with('\n') {
            hosts_text.push('\n');
        }
        hosts_text.push_str("# Entries added by HostAliases.\n");
        for alias in &pod.spec.host_aliases {
            hosts_text.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.join("\t")));
        }
    }
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, hosts_text)?;
    let hn = dir.join("hostname");
    std::fs::write(&hn, format!("{hostname}\n"))?;
    let mut files = vec![
        BindMount {
            source: hosts,
            destination: "/etc/hosts".into(),
            readonly: false,
        },
        BindMount {
            source: hn,
            destination: "/etc/hostname".into(),
            readonly: false,
        },
    ];
    let node = match std::fs::read_to_string(&dns.node_resolv_conf) {
        Ok(text) => crate::dns::resolv::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e),
    };
    let spec = &pod.spec;
    let conf = crate::dns::resolv::for_pod(
        &pod.metadata.namespace,
        spec.dns_policy.as_deref(),
        spec.dns_config.as_ref(),
        spec.host_network,
        &dns.cluster,
        &node,
    );
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, crate::dns::resolv::render(&conf))?;
    files.push(BindMount {
        source: resolv,
        destination: "/etc/resolv.conf".into(),
        readonly: false,
    });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_aliases_and_the_hostname_go_into_etc_hosts() {
        let pod = crate::spec::parse_pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local, db]}]\n  securityContext: {fsGroup: 2000, supplementalGroups: [3000]}\n  containers: [{name: a, image: x}]\n",
        )
        .expect("valid pod");
        let dir = tempfile::tempdir().expect("tempdir");
        let dns = crate::pod::PodDnsSettings::default();
        let files = pod_files(dir.path(), &pod, &pod_hostname(&pod), &[], &dns).expect("files");
        let hosts = std::fs::read_to_string(&files[0].source).expect("hosts");
        assert!(hosts.contains("127.0.1.1\tp\n"), "{hosts}");
        assert!(hosts.ends_with("10.1.2.3\tdb.local\tdb\n"), "{hosts}");
        let dests: Vec<&str> = files.iter().map(|f| f.destination.as_str()).collect();
        assert_eq!(&dests[..2], ["/etc/hosts", "/etc/hostname"]);
    }

    #[test]
    fn a_pod_with_a_subdomain_has_its_fqdn_in_etc_hosts_like_kubelet_writes_it() {
        let pod = crate::spec::parse_pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: prod}\nspec:\n  hostname: db-0\n  subdomain: db\n  containers: [{name: a, image: x}]\n",
        )
        .expect("valid pod");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut dns = crate::pod::PodDnsSettings::default();
        dns.cluster.domain = "cluster.local".into();
        let ips = ["10.244.1.5".to_string()];
        let files = pod_files(dir.path(), &pod, &pod_hostname(&pod), &ips, &dns).expect("files");
        let hosts = std::fs::read_to_string(&files[0].source).expect("hosts");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            hosts.ends_with(
                "fe00::2\tip6-allrouters\n10.244.1.5\tdb-0.db.prod.svc.cluster.local\tdb-0\n"
            ),
            "{hosts}"
        );
        // Without a subdomain: the pod IP and the hostname only.
        let plain = crate::spec::parse_pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n",
        )
        .expect("valid pod");
        let files = pod_files(dir.path(), &plain, "p", &ips, &dns).expect("files");
        let hosts = std::fs::read_to_string(&files[0].source).expect("hosts");
        assert!(hosts.ends_with("\n10.244.1.5\tp\n"), "{hosts}");
    }

    #[test]
    fn cpu_translation_matches_kubelet() {
        assert_eq!(shares_from_millis(0), 2);
        assert_eq!(shares_from_millis(1000), 1024);
        assert_eq!(shares_from_millis(250), 256);
        assert_eq!(quota_from_millis(500), 50_000);
        assert_eq!(quota_from_millis(1), 1000);
    }

    #[test]
    fn pod_limits_sum_only_when_every_container_has_one() {
        let pod = crate::spec::parse_pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: x, resources: {limits: {memory: 64Mi, cpu: 500m}}}\n  - {name: b, image: x, resources: {limits: {memory: 32Mi}}}\n",
        )
        .expect("valid pod");
        let r = pod_resources(&pod, Some(100)).expect("resources");
        assert_eq!(r.memory_limit_bytes, Some(96 * 1024 * 1024));
        assert_eq!(r.cpu_quota_us, None);
        assert_eq!(r.pids_limit, Some(100));
    }
}
