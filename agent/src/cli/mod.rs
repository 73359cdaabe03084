//! Flags and subcommands of `bosun-agent`, and their dispatch.

mod dns;
mod dns_serve;
mod image_gc;
mod images;
mod logs;
mod network;
mod progress;
mod ps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use bosun_agent::cluster::NodeIdentity;
use bosun_agent::dataplane::{Dataplane, DataplaneConfig};
use bosun_agent::foreground::StopSignals;
use bosun_agent::image::{ImageStore, Keyring, Puller};
use bosun_agent::network::node::AddedRoutes;
use bosun_agent::network::{NetworkConfig, PodNetwork};
use bosun_agent::pod::backoff::BackoffPolicy;
use bosun_agent::pod::{NodeConfig, NodeContext};
use bosun_agent::runtime::cgroup::CgroupHost;
use bosun_agent::spec::PullPolicy;

#[derive(Parser, Debug)]
#[command(
    name = "bosun-agent",
    version,
    about = "bosun node agent: pods without a shim"
)]
pub struct Args {
    /// Persistent state: images, pod records, logs.
    #[arg(long, global = true, default_value = "/var/lib/bosun")]
    pub root: PathBuf,
    /// Runtime state: namespace handles, sockets.
    #[arg(long, global = true, default_value = "/run/bosun")]
    pub run_dir: PathBuf,
    /// cgroup (relative to each hierarchy's root) under which all pods live.
    #[arg(long, global = true, default_value = "bosun")]
    pub cgroup_root: String,
    /// Run the Pod manifests in DIR as static pods (the node daemon).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Join the cluster of this kubeconfig: register the Node, renew its Lease, run the pods
    /// bound to it and report their status (beside any --manifests).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubelet's TLS bootstrap: when --kubeconfig holds no valid client certificate, ask the
    /// cluster of this kubeconfig (a bootstrap token) for one and write --kubeconfig with it.
    #[arg(long, value_name = "FILE", requires = "kubeconfig")]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// The Node's name when joining a cluster (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Pods this node takes when joining a cluster (kubelet's `--max-pods`), reported as the
    /// Node's `pods` capacity, which the scheduler places against.
    #[arg(long, default_value_t = bosun_agent::cluster::machine::MAX_PODS)]
    pub max_pods: u32,
    /// The node Lease's `leaseDurationSeconds` (kubelet's nodeLeaseDurationSeconds); the Lease
    /// is renewed every quarter of it, as kubelet does.
    #[arg(long, default_value_t = bosun_agent::cluster::lease::DURATION_SECONDS, value_parser = clap::value_parser!(i32).range(1..))]
    pub node_lease_duration_seconds: i32,
    /// Maximum number of processes per pod (kubelet's podPidsLimit); unset = unlimited.
    #[arg(long, global = true)]
    pub pod_pids_limit: Option<i64>,
    /// CrashLoopBackOff base delay in milliseconds (kubelet: 10000).
    #[arg(long, global = true, default_value_t = 10_000)]
    pub backoff_base_ms: u64,
    /// CrashLoopBackOff maximum delay in milliseconds (kubelet: 300000).
    #[arg(long, global = true, default_value_t = 300_000)]
    pub backoff_max_ms: u64,
    /// A container running this long (ms) resets its backoff (kubelet: 600000).
    #[arg(long, global = true, default_value_t = 600_000)]
    pub backoff_reset_ms: u64,
    /// Pod networking: `cni` (plugins from --cni-conf-dir) or `none` (pods get a private netns
    /// with only lo). Default: cni for the node daemon, none for `run` (a one-off pod leaves
    /// the host's network as it found it).
    #[arg(long, global = true, value_parser = ["cni", "none"])]
    pub network: Option<String>,
    /// CNI network configuration directory: its first config is used; if it holds none, the
    /// daemon writes a default bosun-cni conflist for --pod-cidr there (`run` keeps it in
    /// memory). Default: <run-dir>/cni.
    #[arg(long, global = true)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Directories searched for CNI plugins (default: next to bosun-agent, /usr/lib/cni, /opt/cni/bin).
    #[arg(long, global = true)]
    pub cni_bin_dir: Vec<PathBuf>,
    /// This node's pod CIDR (blackholed on the node; refused if that would shadow a route the
    /// node has).
    #[arg(long, global = true, default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    /// The cluster's service CIDR (blackholed on the node; refused if that would shadow a
    /// route the node has).
    #[arg(long, global = true, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// Service dataplane: `ebpf` (socket-level ClusterIP load balancing) or `none`.
    /// Default: ebpf with --network cni, none with --network none.
    #[arg(long, global = true, value_parser = ["ebpf", "none"])]
    pub dataplane: Option<String>,
    /// Pins of the dataplane's eBPF programs, maps and links (bpffs is mounted at /sys/fs/bpf
    /// if needed).
    #[arg(long, global = true, default_value = "/sys/fs/bpf/bosun")]
    pub bpffs_dir: PathBuf,
    /// Attach the service hooks at the cgroup v2 root, so host processes get ClusterIPs too
    /// (default: only the pods under --cgroup-root).
    #[arg(long, global = true)]
    pub attach_host_cgroup: bool,
    /// The node's network namespace, when it is not the agent's own (tests, demos).
    #[arg(long, global = true)]
    pub node_netns: Option<PathBuf>,
    /// The node's IP, reported as the IP of hostNetwork pods (default: the node's first
    /// global IPv4 address).
    #[arg(long, global = true)]
    pub node_ip: Option<std::net::IpAddr>,
    /// Where CSI drivers listen: `<dir>/<driver name>/csi.sock` (default `<root>/plugins`).
    #[arg(long, global = true)]
    pub csi_plugin_dir: Option<PathBuf>,
    /// The kubelet API's port (logs for the API server; kubelet's `--port`), reported in the
    /// Node's daemonEndpoints. Only with --kubeconfig.
    #[arg(long, default_value_t = bosun_agent::kubelet_api::DEFAULT_PORT)]
    pub port: u16,
    /// The address the kubelet API listens on (kubelet's `--address`), in the node's netns
    /// when --node-netns is given. Default: the node's IP (--node-ip).
    #[arg(long)]
    pub address: Option<std::net::IpAddr>,
    /// The cluster DNS address pods get as their nameserver (kubelet's `--cluster-dns`),
    /// served by this node's own DNS server; `none`: no cluster DNS. Default: the 10th address
    /// of --service-cidr (kube-dns's ClusterIP).
    #[arg(long, value_name = "IP|none")]
    pub cluster_dns: Option<String>,
    /// The cluster's DNS domain (kubelet's `--cluster-domain`).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The node's resolver configuration: what `dnsPolicy: Default` pods get, the search
    /// domains appended for `ClusterFirst`, and the upstreams cluster DNS forwards to.
    #[arg(long, global = true, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// The port of the node's DNS server on the node's IP (the cluster DNS address's port 53
    /// is steered there).
    #[arg(long, default_value_t = 53)]
    pub dns_port: u16,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, global = true)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// A registry (`HOST:PORT` as written in image references) spoken to over plain HTTP
    /// instead of HTTPS; repeatable. Only for registries you trust on a trusted network.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT", global = true)]
    pub insecure_registries: Vec<String>,
    /// A docker `config.json` whose `auths` are the node's registry credentials, tried after
    /// a pod's imagePullSecrets (kubelet's node-wide keyring).
    #[arg(long = "registry-config", value_name = "FILE", global = true)]
    pub registry_config: Option<PathBuf>,
    #[command(flatten)]
    pub image_gc: image_gc::ImageGcArgs,
    /// tracing filter, e.g. info or bosun_agent=debug.
    #[arg(long, global = true, default_value = "info", env = "BOSUN_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage the local image store.
    Image {
        #[command(subcommand)]
        action: images::ImageCommand,
    },
    /// Run one pod in the foreground; exit with its last container's exit code.
    Run { file: PathBuf },
    /// List the daemon's pods and containers.
    Ps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a container's logs.
    Logs(logs::LogsArgs),
    /// The node routes the daemon installs (blackholes for --pod-cidr and --service-cidr).
    Network {
        #[command(subcommand)]
        action: network::NetworkCommand,
    },
    /// The cluster DNS server alone, answering for the Services and EndpointSlices of a file
    /// (the DNS benchmark's server).
    #[command(hide = true)]
    DnsServe(dns_serve::DnsServeArgs),
}

/// Which kind of process this is: the node daemon keeps what it sets up on the node, a
/// one-off `run` leaves the node as it found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Daemon,
    Run,
}

impl Args {
    /// `--network`, defaulted by role.
    fn network_mode(&self, role: Role) -> &str {
        self.network.as_deref().unwrap_or(match role {
            Role::Daemon => "cni",
            Role::Run => "none",
        })
    }

    /// `--cni-conf-dir`, default `<run-dir>/cni`.
    fn cni_conf_dir(&self) -> PathBuf {
        self.cni_conf_dir
            .clone()
            .unwrap_or_else(|| self.run_dir.join("cni"))
    }
}

pub fn init_tracing(filter: &str) {
    // libcgroups logs every unsupported v1 controller at warn level on each cgroup it opens.
    let filter = format!("libcgroups=error,{filter}");
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| progress::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(Command::Image { action }) => images::run(&args, action),
        Some(Command::Ps { json }) => ps::run(&args, *json),
        Some(Command::Logs(l)) => logs::run(&args, l),
        Some(Command::Network { action }) => network::run(&args, action),
        Some(Command::Run { file }) => run_foreground(&args, file),
        Some(Command::DnsServe(d)) => dns_serve::run(&args, d),
        None if args.manifests.is_none() && args.kubeconfig.is_none() => {
            bail!("nothing to do: give --manifests DIR, --kubeconfig FILE or a subcommand (see --help)")
        }
        None => run_daemon(&args),
    }
}

fn node_context(args: &Args, network: Option<PodNetwork>) -> anyhow::Result<Arc<NodeContext>> {
    for d in [&args.root, &args.run_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if let Err(e) = bosun_agent::sys::pidfd::become_subreaper() {
        tracing::warn!(error = %e, "cannot become child subreaper");
    }
    let image_gc = args.image_gc.policy()?;
    let images = ImageStore::open(&args.root.join("images")).context("opening the image store")?;
    bosun_agent::runtime::trash::empty_in_background(&args.root);
    let cgroups = CgroupHost::detect(Path::new(&args.cgroup_root)).context("detecting cgroups")?;
    let agent_exe = agent_exe()?;
    let config = NodeConfig {
        root: args.root.clone(),
        run_dir: args.run_dir.clone(),
        cgroup_root: args.cgroup_root.clone(),
        init_exe: init_exe(&agent_exe),
        pod_pids_limit: args.pod_pids_limit,
        backoff: BackoffPolicy {
            base: Duration::from_millis(args.backoff_base_ms),
            max: Duration::from_millis(args.backoff_max_ms),
            reset_after: Duration::from_millis(args.backoff_reset_ms),
        },
        node_netns: args.node_netns.clone(),
        node_ip: args.node_ip,
        dns: dns::pod_settings(args, dns_runs(args)?)?,
        csi_plugin_dir: args.csi_plugin_dir.clone(),
        image_gc: image_gc.0,
        image_gc_period: image_gc.1,
    };
    let puller = match Puller::new(&args.insecure_registries) {
        Ok(p) => Some(p.with_node_credentials(node_keyring(args)?)),
        Err(e) => {
            tracing::warn!(error = %e, "no registry client: images must be imported");
            None
        }
    };
    Ok(Arc::new(NodeContext::new(
        config, images, puller, cgroups, network,
    )))
}

/// The node's registry credentials (`--registry-config`), empty without one.
pub(crate) fn node_keyring(args: &Args) -> anyhow::Result<Keyring> {
    let mut keyring = Keyring::default();
    if let Some(path) = &args.registry_config {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading --registry-config {}", path.display()))?;
        keyring.add_docker_config_json(&format!("--registry-config {}", path.display()), &bytes)?;
    }
    Ok(keyring)
}

fn agent_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the agent binary")
}

/// The per-container helper: `bosun-init` next to the agent (small, quick to start), else the
/// agent binary itself (it has the same hidden subcommands).
fn init_exe(agent_exe: &Path) -> PathBuf {
    agent_exe
        .parent()
        .map(|d| d.join("bosun-init"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| agent_exe.to_path_buf())
}

/// `--pod-cidr` and `--service-cidr`, parsed.
fn cidrs(args: &Args) -> anyhow::Result<(ipnet::IpNet, ipnet::IpNet)> {
    let pod = args
        .pod_cidr
        .parse()
        .with_context(|| format!("--pod-cidr {}", args.pod_cidr))?;
    let service = args
        .service_cidr
        .parse()
        .with_context(|| format!("--service-cidr {}", args.service_cidr))?;
    Ok((pod, service))
}

/// Loads the CNI network (none with `--network none`) and installs the node routes
/// (blackholes for the pod and service CIDRs), refusing any that would shadow a route the
/// node has. Returns the routes it added: the daemon keeps them, `run` removes them again.
fn pod_network(args: &Args, role: Role) -> anyhow::Result<(Option<PodNetwork>, AddedRoutes)> {
    let nothing = AddedRoutes::new(None, Vec::new());
    if args.network_mode(role) == "none" {
        return Ok((None, nothing));
    }
    let agent_exe = agent_exe()?;
    let mut bins = args.cni_bin_dir.clone();
    if bins.is_empty() {
        bins.extend(agent_exe.parent().map(Path::to_path_buf));
        bins.push("/usr/lib/cni".into());
        bins.push("/opt/cni/bin".into());
    }
    let mut cfg = NetworkConfig::new(args.cni_conf_dir(), bins, args.root.join("cni"));
    (cfg.pod_cidr, cfg.service_cidr) = cidrs(args)?;
    cfg.write_default = role == Role::Daemon;
    cfg.default_ip_forward = role == Role::Daemon;
    let net = PodNetwork::load(cfg).context("loading the CNI network")?;
    let added =
        bosun_agent::sys::netns_exec::in_netns(args.node_netns.as_deref(), || net.setup_node())
            .context("entering --node-netns")?
            .context("setting up node routes")?;
    for r in &added {
        tracing::info!(dst = %r.dst, prefix = r.prefix, kind = ?r.kind, "node route added");
    }
    Ok((Some(net), AddedRoutes::new(args.node_netns.clone(), added)))
}

/// The event loop's blocking pool (tokio's default is 512).
const BLOCKING_THREADS: usize = 128;

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Before the runtime's threads exist, so they share the capped arenas.
    bosun_agent::sys::malloc::limit_arenas(bosun_agent::sys::malloc::AGENT_ARENAS);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // A node starting hundreds of pods at once had ~450 blocking threads, each with its
        // stack and share of the arenas, alive 10 s after the burst: 128 keep two cores busy
        // (the work is clone, mount and exec waits), and idle ones leave after 2 s.
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .context("starting the event loop")
}

fn run_foreground(args: &Args, file: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let pod = bosun_agent::spec::parse_pod(&text).with_context(|| format!("{}", file.display()))?;
    let rt = tokio_runtime()?;
    // From here on, Ctrl-C and SIGTERM stop the pod and undo what was set up instead of
    // killing this process half-way.
    let stop = {
        let _in_runtime = rt.enter();
        StopSignals::register().context("handling SIGINT/SIGTERM")?
    };
    let (network, added_routes) = pod_network(args, Role::Run)?;
    let ctx = node_context(args, network)?;
    // A one-off run fails fast on an image it cannot get, instead of backing off forever.
    for (field, c) in pod.spec.all_containers() {
        let present = ctx.images.resolve(&c.image);
        match (c.pull_policy(), present, &ctx.puller) {
            (PullPolicy::IfNotPresent, Ok(_), _) => {}
            (PullPolicy::Never, Ok(_), _) => {}
            (PullPolicy::Never, Err(e), _) => Err(e).with_context(|| {
                format!("{field}.image: ErrImageNeverPull: image {} is not in the store and imagePullPolicy is Never (import it with `bosun-agent image import`)", c.image)
            })?,
            (_, _, Some(puller)) => {
                rt.block_on(puller.pull(&ctx.images, &c.image))
                    .with_context(|| format!("{field}.image: ErrImagePull"))?;
            }
            (_, _, None) => bail!("{field}.image: image {} is not in the store and there is no registry client", c.image),
        }
    }
    let status = rt.block_on(bosun_agent::foreground::run_pod(ctx, pod, stop))?;
    eprint!("{}", bosun_agent::foreground::summary(&status));
    // The pod is gone (its CNI DEL done): the node routes this run added go too.
    added_routes
        .remove()
        .context("removing the node routes this run added")?;
    let code = bosun_agent::foreground::exit_code(&status);
    Ok(ExitCode::from(
        u8::try_from(code.clamp(0, 255)).unwrap_or(1),
    ))
}

/// `--dataplane`, default ebpf with `--network cni`.
fn dataplane_wanted(args: &Args) -> &str {
    args.dataplane
        .as_deref()
        .unwrap_or(if args.network_mode(Role::Daemon) == "cni" {
            "ebpf"
        } else {
            "none"
        })
}

/// The node runs its cluster DNS server: joined, with the eBPF dataplane (which steers the
/// cluster DNS address to it), and `--cluster-dns` not `none`.
fn dns_runs(args: &Args) -> anyhow::Result<bool> {
    let wanted = args.kubeconfig.is_some() && dataplane_wanted(args) == "ebpf";
    Ok(wanted && dns::cluster_dns_address(args)?.is_some())
}

/// Starts the eBPF service dataplane unless `--dataplane none` (or `--network none` without
/// `--dataplane ebpf`), and registers its counters with the metrics endpoint.
fn dataplane(
    args: &Args,
    ctx: &NodeContext,
    dns_server: Option<std::net::SocketAddrV4>,
) -> anyhow::Result<Option<Arc<Mutex<Dataplane>>>> {
    if dataplane_wanted(args) == "none" {
        return Ok(None);
    }
    let service_cidr = match args.service_cidr.parse::<ipnet::IpNet>() {
        Ok(ipnet::IpNet::V4(net)) => net.trunc(),
        _ => bail!("--service-cidr {}: not an IPv4 CIDR", args.service_cidr),
    };
    let cfg = DataplaneConfig {
        bpffs_dir: args.bpffs_dir.clone(),
        cgroup_root: args.cgroup_root.clone(),
        cgroup_layout: ctx.cgroups.setup,
        attach_host_cgroup: args.attach_host_cgroup,
        service_cidr,
        node_netns: args.node_netns.clone(),
        map_sizes: bosun_ebpf::MapSizes::default(),
        cluster_dns: match (dns::cluster_dns_address(args)?, dns_server) {
            (Some(vip), Some(server)) => Some((vip, server)),
            _ => None,
        },
    };
    let dp = Dataplane::start(&cfg).context("starting the eBPF service dataplane")?;
    let dp = Arc::new(Mutex::new(dp));
    let source = dp.clone();
    bosun_agent::metrics::metrics().set_service_source(Box::new(move || {
        source.lock().unwrap_or_else(|p| p.into_inner()).samples()
    }));
    Ok(Some(dp))
}

/// The kubelet API's listener (on --address, default the node's IP, in the node's netns) and
/// its TLS configuration (the cluster CA of the kubeconfig verifies the API server).
async fn kubelet_serving(
    args: &Args,
    node: &NodeIdentity,
    ca: &[Vec<u8>],
) -> anyhow::Result<bosun_agent::kubelet_api::KubeletServing> {
    use bosun_agent::kubelet_api::{listen, tls, KubeletServing};
    let addr = std::net::SocketAddr::new(args.address.unwrap_or(node.ip), args.port);
    let listener = listen::bind(args.node_netns.clone(), addr)
        .await
        .with_context(|| format!("the kubelet API on {addr} (--address, --port)"))?;
    let tls = tls::server_config(ca, &node.name, node.ip)?;
    Ok(KubeletServing { listener, tls })
}

/// `--node-name`, default the hostname.
fn node_name(args: &Args) -> anyhow::Result<String> {
    if let Some(name) = &args.node_name {
        return Ok(name.clone());
    }
    let host = nix::unistd::gethostname().context("reading the hostname for --node-name")?;
    Ok(host.to_string_lossy().to_lowercase())
}

/// What joining needs before the event loop: the client is built inside it.
fn node_identity(args: &Args, ctx: &NodeContext) -> anyhow::Result<NodeIdentity> {
    let name = node_name(args)?;
    if let Some(e) = bosun_agent::spec::dns1123_subdomain_error(&name) {
        bail!("--node-name {name:?}: {e}");
    }
    let ip = bosun_agent::pod::node_ips(ctx)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .next()
        .context("the node has no global address to report as its InternalIP: set --node-ip")?;
    let pod_cidr = cidrs(args)?.0;
    Ok(NodeIdentity {
        name,
        ip,
        pod_cidr,
        max_pods: args.max_pods,
        kubelet_port: args.port,
        lease_duration_seconds: args.node_lease_duration_seconds,
    })
}

fn run_daemon(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.manifests.as_deref().filter(|d| !d.is_dir()) {
        bail!("--manifests {}: not a directory", dir.display());
    }
    // Bound before any directory, pod, route or map is touched: a taken address fails here.
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(bosun_agent::metrics::http::bind(addr).map_err(|e| {
            anyhow::anyhow!(
                "--metrics-addr {addr}: {}",
                bosun_agent::metrics::http::describe_bind_error(&e)
            )
        })?),
        None => None,
    };
    let (network, added_routes) = pod_network(args, Role::Daemon)?;
    // The daemon's node routes stay when it stops (`bosun-agent network teardown` removes them).
    added_routes.keep();
    let ctx = node_context(args, network)?;
    let node = match &args.kubeconfig {
        Some(_) => Some(node_identity(args, &ctx)?),
        None => None,
    };
    let dns = match (&node, dns_runs(args)?) {
        (Some(node), true) => Some(dns::serving(args, node.ip)?),
        _ => None,
    };
    let dataplane = dataplane(args, &ctx, dns.as_ref().map(|d| d.2))?;
    let mut dns = dns.map(|(sockets, serving, _)| (sockets, serving));
    let rt = tokio_runtime()?;
    rt.block_on(async {
        let join = match (&args.kubeconfig, node) {
            (Some(file), Some(node)) => {
                if let Some(bootstrap) = &args.bootstrap_kubeconfig {
                    bosun_agent::cluster::bootstrap::ensure_kubeconfig(bootstrap, file, &node.name)
                        .await?;
                }
                let (client, ca) = bosun_agent::cluster::client(file).await?;
                let kubelet = kubelet_serving(args, &node, &ca).await?;
                Some(bosun_agent::daemon::Join {
                    client,
                    node,
                    kubelet,
                    dns: dns.take(),
                })
            }
            _ => None,
        };
        use tokio::signal::unix::{signal, SignalKind};
        if let Some(listener) = metrics_listener {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(bosun_agent::metrics::http::serve(listener));
        }
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            r = bosun_agent::daemon::run(ctx, args.manifests.clone(), dataplane, join) => r?,
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        anyhow::Ok(())
    })?;
    tracing::info!("agent stopping; pods keep running for the next agent to adopt");
    Ok(ExitCode::SUCCESS)
}
