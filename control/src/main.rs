//! `bosun-control`: the Kubernetes API server of bosun (see the crate docs).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use bosun_control::api::service_alloc::ServiceNetwork;
use bosun_control::api::{self, ApiState};
use bosun_control::authn::{bootstrap, TokenFile};
use bosun_control::limits::{Limits, LimitsConfig};
use bosun_control::store::{
    Compactor, CompactorConfig, EncryptedStore, EncryptionKey, Store, TimedStore,
};
use bosun_control::{kubeconfig, pki, router::ServerInfo, server};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bosun-control",
    about = "bosun's Kubernetes API server",
    version,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// State: the CA and certificates (pki/), the admin kubeconfig, the store (state.db).
    #[arg(long, default_value = "/var/lib/bosun-control")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port (0: any free port; the kubeconfig names the one chosen).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Address clients use to reach the server (written into the kubeconfig); defaults to the
    /// bind address, or 127.0.0.1 when binding to all addresses.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    #[command(flatten)]
    store: bosun_control::store::StoreArgs,
    /// Where Services get their ClusterIPs (the first address is the `kubernetes` Service's).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// Where NodePort and LoadBalancer Services get their node ports.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// The order in which a Node's address types are tried to reach its kubelet (logs).
    /// kube-apiserver starts with Hostname; ours with InternalIP, so reaching a node never
    /// needs a DNS lookup.
    #[arg(long, default_value = bosun_control::kubelet::address::DEFAULT)]
    kubelet_preferred_address_types: String,
    /// Static bearer tokens, kube-apiserver's CSV format: `token,user,uid,"group1,group2"`.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// The `iss` of service-account tokens (signed by `<data-dir>/pki/sa.key`, made on first
    /// start; API servers sharing a store must share it).
    #[arg(long, default_value = bosun_control::authn::service_account::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// The audiences a service-account token must name to authenticate here (and what a
    /// TokenRequest without audiences gets); default: the issuer.
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// kube-apiserver's: a pod-bound token asked for 3607 s (what kubelet asks for the
    /// kube-api-access volume) is valid for a year, with the 3607 s as its `warnafter`, so
    /// clients that never reload their token keep working; `false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    service_account_extend_token_expiration: bool,
    /// Lifetime of the bootstrap token made at start (`<data-dir>/bootstrap.kubeconfig`), in
    /// seconds; 0: it never expires.
    #[arg(long, default_value_t = 24 * 3600)]
    bootstrap_token_ttl_seconds: u64,
    /// Sustained requests per second each client (user) may make; 0: no limit.
    /// Administrators are exempt. Over it: 429 with Retry-After.
    #[arg(long, default_value_t = 1000.0)]
    max_requests_per_second_per_client: f64,
    /// Requests a client may make at once above its sustained rate.
    #[arg(long, default_value_t = 2000)]
    max_request_burst_per_client: u32,
    /// Concurrent watches each client may hold; 0: no limit. Administrators are exempt.
    #[arg(long, default_value_t = 1000)]
    max_watches_per_client: usize,
    /// How long a node may go without renewing its Lease before it is NotReady (`40s`, `2m`).
    #[arg(long, default_value = "40s", value_parser = duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How long pods stay on an unreachable or not-ready node before they are deleted (unless
    /// their tolerations say otherwise): the `tolerationSeconds` of the tolerations of those
    /// taints that pods get at create (kube's DefaultTolerationSeconds admission).
    #[arg(long, default_value = "5m", value_parser = duration)]
    pod_eviction_timeout: std::time::Duration,
    /// How long a node must be missing before the pods bound to it are force-deleted (the
    /// pod garbage collector's quarantine).
    #[arg(long, default_value = "40s", value_parser = duration)]
    pod_gc_orphan_quarantine: std::time::Duration,
    /// How long the controllers' leader Lease lasts without renewal before another control
    /// process over the same etcd takes over.
    #[arg(long, default_value = "10s", value_parser = duration)]
    leader_elect_lease_duration: std::time::Duration,
    /// How often the Lease is renewed or tried.
    #[arg(long, default_value = "2s", value_parser = duration)]
    leader_elect_retry_period: std::time::Duration,
    /// How often each node's kubelet resource metrics are scraped (metrics-server's flag).
    #[arg(long, default_value = "10s", value_parser = duration)]
    metric_resolution: std::time::Duration,
    /// How often each HorizontalPodAutoscaler is evaluated (kube-controller-manager's flag).
    #[arg(long, default_value = "15s", value_parser = duration)]
    horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// How far back the highest recommendation is kept before scaling down, for HPAs whose
    /// behavior does not set it (kube-controller-manager's flag, 5m).
    #[arg(long, default_value = "5m", value_parser = duration)]
    horizontal_pod_autoscaler_downscale_stabilization: std::time::Duration,
    /// The audit policy (audit.k8s.io/v1 Policy, YAML or JSON); with `--audit-log-path`,
    /// requests are audited at the levels it gives.
    #[arg(long)]
    audit_policy_file: Option<String>,
    /// Where audit events go, one JSON object per line (`-`: standard output); without it
    /// nothing is audited.
    #[arg(long)]
    audit_log_path: Option<String>,
    /// Megabytes an audit log file grows to before it is rotated; 0: never rotated.
    #[arg(long, default_value_t = 0)]
    audit_log_maxsize: u64,
    /// Rotated audit log files kept; 0: all.
    #[arg(long, default_value_t = 0)]
    audit_log_maxbackup: usize,
    /// Days rotated audit log files are kept; 0: no limit.
    #[arg(long, default_value_t = 0)]
    audit_log_maxage: u64,
    /// The audit log's format: `json` (kube's other, `legacy`, is not written).
    #[arg(long, default_value = "json")]
    audit_log_format: String,
    /// A kubeconfig naming the audit webhook (its server, CA and credentials); with
    /// `--audit-policy-file`, audit events are also POSTed to it in batches.
    #[arg(long)]
    audit_webhook_config_file: Option<String>,
    /// How events reach the webhook: `batch` (kube's `blocking` modes are not offered).
    #[arg(long, default_value = "batch")]
    audit_webhook_mode: String,
    /// Events held for the webhook before new ones are dropped.
    #[arg(long, default_value_t = 10000)]
    audit_webhook_batch_buffer_size: usize,
    /// Events in one batch at most.
    #[arg(long, default_value_t = 400)]
    audit_webhook_batch_max_size: usize,
    /// How long a batch waits for more events after its first.
    #[arg(long, default_value = "30s", value_parser = duration)]
    audit_webhook_batch_max_wait: std::time::Duration,
    /// Whether batches are throttled.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    audit_webhook_batch_throttle_enable: bool,
    /// Batches a second, when throttled.
    #[arg(long, default_value_t = 10.0)]
    audit_webhook_batch_throttle_qps: f64,
    /// Batches sent at once before the throttle paces them.
    #[arg(long, default_value_t = 15)]
    audit_webhook_batch_throttle_burst: u32,
    /// How long a batch the webhook did not take waits before it is sent again (1.5 times
    /// longer each time, five tries).
    #[arg(long, default_value = "10s", value_parser = duration)]
    audit_webhook_initial_backoff: std::time::Duration,
    /// The API version of the events sent: `audit.k8s.io/v1`.
    #[arg(long, default_value = "audit.k8s.io/v1")]
    audit_webhook_version: String,
    /// `tracing` filter, e.g. `info` or `bosun_control=debug`.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Writes a kubeconfig for a node (user system:node:NAME, group system:nodes) with a
    /// client certificate signed by the cluster CA (for tests and `cargo xtask up`).
    Kubeconfig {
        /// The data dir of the control process (its pki/ and admin.kubeconfig).
        #[arg(long, default_value = "/var/lib/bosun-control")]
        data_dir: PathBuf,
        /// The node's name.
        #[arg(long)]
        node: String,
        /// Where to write the kubeconfig (0600).
        #[arg(long)]
        out: PathBuf,
        /// The server URL; defaults to the one in `<data-dir>/admin.kubeconfig`.
        #[arg(long)]
        server: Option<String>,
    },
}

/// A duration like Kubernetes' flags take: `40s`, `5m`, `1h`, `500ms`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 40s or 5m"))?;
    let seconds = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Command::Kubeconfig {
        data_dir,
        node,
        out,
        server,
    }) = &args.command
    {
        let text = kubeconfig::for_node(data_dir, node, server.as_deref())
            .with_context(|| format!("a kubeconfig for node {node}"))?;
        kubeconfig::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
        println!("{}", out.display());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let bind = SocketAddr::new(args.bind_address, args.secure_port);
    // Bind first: a port in use fails before anything is written.
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("--bind-address/--secure-port {bind}"))?;
    // Generate the OpenAPI documents now, off the runtime, rather than on kubectl's first apply.
    std::thread::spawn(|| {
        bosun_control::openapi::documents();
    });
    let port = listener.local_addr().context("listening address")?.port();
    let advertise = args
        .advertise_address
        .unwrap_or(if args.bind_address.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            args.bind_address
        });

    // The store and the built-in namespaces are ready before the kubeconfig says we are.
    let store = args
        .store
        .open(&args.data_dir)
        .await
        .context("opening the store")?;
    // Secrets are encrypted at rest, in either backend, with a key kept in the data dir.
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let key_path = args.data_dir.join("secrets-encryption.key");
    let key = EncryptionKey::load_or_create(&key_path)
        .with_context(|| format!("the encryption key {}", key_path.display()))?;
    let secrets: Vec<String> = bosun_control::kinds::find("", "v1", "secrets")
        .map(|r| r.key_prefix())
        .into_iter()
        .collect();
    let store: Arc<dyn Store> = Arc::new(TimedStore::new(store));
    let store: Arc<dyn Store> = Arc::new(EncryptedStore::new(store, key, secrets));
    let _compactor = Compactor::spawn(Arc::downgrade(&store), CompactorConfig::default());
    let ca =
        Arc::new(pki::Ca::load_or_create(&args.data_dir.join("pki")).context("loading the CA")?);
    let mut ips = vec![IpAddr::from([127, 0, 0, 1]), advertise];
    if !args.bind_address.is_unspecified() {
        ips.push(args.bind_address);
    }
    ips.dedup();
    let dns: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .map(String::from)
    .to_vec();
    let serving = ca
        .issue_server(&dns, &ips)
        .context("issuing the serving certificate")?;
    let tls = server::tls_config(&ca.cert_pem, &serving).context("TLS configuration")?;

    let address = SocketAddr::new(advertise, port).to_string();
    let kubeconfig_path = args.data_dir.join("admin.kubeconfig");
    let admin = ca.admin().context("the admin certificate")?;
    let text = kubeconfig::render(
        &format!("https://{address}"),
        &ca.cert_pem,
        kubeconfig::Credentials::Certificate(&admin),
        "bosun-admin",
    );
    let mut state = ApiState::new(
        store,
        ServerInfo {
            address: address.clone(),
        },
    );
    state.service_network = ServiceNetwork::parse(
        &args.service_cluster_ip_range,
        &args.service_node_port_range,
    )
    .map_err(anyhow::Error::msg)
    .context("--service-cluster-ip-range/--service-node-port-range")?;
    state.ca = Some(Arc::clone(&ca));
    // A part of a second rounds up: a pod never tolerates less than the flag says.
    let eviction = args.pod_eviction_timeout;
    state.default_toleration_seconds = eviction.as_secs() + u64::from(eviction.subsec_nanos() > 0);
    state.kubelet = Some(Arc::new(
        bosun_control::kubelet::KubeletClient::new(&ca).context("the kubelet client")?,
    ));
    state.kubelet_address_types =
        bosun_control::kubelet::AddressTypes::parse(&args.kubelet_preferred_address_types)
            .map_err(anyhow::Error::msg)
            .context("--kubelet-preferred-address-types")?;
    state.limits = Limits::new(LimitsConfig {
        requests_per_second: args.max_requests_per_second_per_client,
        burst: args.max_request_burst_per_client,
        max_watches: args.max_watches_per_client,
    });
    state.service_accounts = Some(Arc::new(
        bosun_control::authn::ServiceAccountTokens::load(
            &args.data_dir.join("pki"),
            &args.service_account_issuer,
            args.api_audiences.clone(),
        )
        .context("the service-account signing key")?
        .with_extended_expiration(args.service_account_extend_token_expiration),
    ));
    if let Some(path) = &args.token_auth_file {
        state.tokens = TokenFile::load(path).context("--token-auth-file")?;
    }
    state.auditor = auditor(
        &args,
        state.server_metrics.audit_events(),
        state.server_metrics.audit_errors("webhook"),
    )?;
    let state = Arc::new(state);
    let _custom_resources = bosun_control::crd::follow::start(Arc::clone(&state.store)).await;
    let _scraper = bosun_control::metrics::spawn(Arc::clone(&state), args.metric_resolution);
    api::bootstrap(&state)
        .await
        .context("creating the built-in namespaces")?;

    let _controllers = bosun_control::controllers::spawn_elected(
        &state,
        SocketAddr::new(advertise, port),
        bosun_control::controllers::LifecycleConfig {
            node_monitor_grace: args.node_monitor_grace_period,
            pod_eviction_timeout: args.pod_eviction_timeout,
            orphan_quarantine: args.pod_gc_orphan_quarantine,
            hpa_sync_period: args.horizontal_pod_autoscaler_sync_period,
            hpa_downscale_stabilization: args.horizontal_pod_autoscaler_downscale_stabilization,
        },
        bosun_control::controllers::ElectionConfig {
            lease_duration: args.leader_elect_lease_duration,
            retry: args.leader_elect_retry_period,
        },
    );

    // A bootstrap token for nodes joining: kept while it is valid, else a new one.
    let bootstrap_path = args.data_dir.join("bootstrap.kubeconfig");
    let ttl = (args.bootstrap_token_ttl_seconds > 0).then(|| {
        time::Duration::seconds(i64::try_from(args.bootstrap_token_ttl_seconds).unwrap_or(i64::MAX))
    });
    let token = bootstrap::ensure(
        state.store.as_ref(),
        kubeconfig::token_of(&bootstrap_path).as_deref(),
        ttl,
    )
    .await
    .context("the bootstrap token")?;
    let bootstrap_text = kubeconfig::render(
        &format!("https://{address}"),
        &ca.cert_pem,
        kubeconfig::Credentials::Token(&token.text()),
        &format!("system:bootstrap:{}", token.id),
    );
    kubeconfig::write(&bootstrap_path, &bootstrap_text)
        .with_context(|| format!("writing {}", bootstrap_path.display()))?;
    println!(
        "bootstrap kubeconfig for nodes: {}",
        bootstrap_path.display()
    );

    kubeconfig::write(&kubeconfig_path, &text)
        .with_context(|| format!("writing {}", kubeconfig_path.display()))?;
    tracing::info!(%address, kubeconfig = %kubeconfig_path.display(), "serving the Kubernetes API");
    println!(
        "kubectl --kubeconfig {} get namespaces",
        kubeconfig_path.display()
    );

    tokio::select! {
        () = server::serve(listener, tls, state) => Ok(()),
        signal = shutdown() => signal,
    }
}

async fn shutdown() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}

/// The auditor of `--audit-policy-file` and its backends: `--audit-log-path` and
/// `--audit-webhook-config-file` (nothing is audited without a backend).
fn auditor(
    args: &Args,
    events: prometheus_client::metrics::counter::Counter,
    webhook_errors: prometheus_client::metrics::counter::Counter,
) -> anyhow::Result<Option<Arc<bosun_control::audit::Auditor>>> {
    use bosun_control::audit::{webhook, Auditor, BatchConfig, LogConfig, Policy, Sink};
    if args.audit_log_format != "json" {
        anyhow::bail!(
            "--audit-log-format {:?}: bosun writes only \"json\"",
            args.audit_log_format
        );
    }
    if args.audit_webhook_mode != "batch" {
        anyhow::bail!(
            "--audit-webhook-mode {:?}: bosun sends only in \"batch\" mode",
            args.audit_webhook_mode
        );
    }
    if args.audit_webhook_version != "audit.k8s.io/v1" {
        anyhow::bail!(
            "--audit-webhook-version {:?}: bosun sends only \"audit.k8s.io/v1\"",
            args.audit_webhook_version
        );
    }
    let Some(policy) = &args.audit_policy_file else {
        return Ok(None);
    };
    if args.audit_log_path.is_none() && args.audit_webhook_config_file.is_none() {
        return Ok(None);
    }
    let policy = Policy::load(policy)?;
    let log = args.audit_log_path.as_ref().map(|path| LogConfig {
        path: path.clone(),
        max_size_mb: args.audit_log_maxsize,
        max_backups: args.audit_log_maxbackup,
        max_age_days: args.audit_log_maxage,
    });
    let webhook = match &args.audit_webhook_config_file {
        Some(path) => {
            let endpoint = webhook::endpoint(path)?;
            let batch = BatchConfig {
                buffer_size: args.audit_webhook_batch_buffer_size,
                max_size: args.audit_webhook_batch_max_size.max(1),
                max_wait: args.audit_webhook_batch_max_wait,
                throttle: args.audit_webhook_batch_throttle_enable.then_some((
                    args.audit_webhook_batch_throttle_qps,
                    args.audit_webhook_batch_throttle_burst,
                )),
                initial_backoff: args.audit_webhook_initial_backoff,
            };
            tracing::info!(config = %path, "auditing requests to a webhook");
            Some(webhook::WebhookQueue::start(
                batch,
                endpoint,
                webhook_errors,
            ))
        }
        None => None,
    };
    let sink = Sink::start(log, webhook, events).with_context(|| {
        format!(
            "opening the audit log {}",
            args.audit_log_path.as_deref().unwrap_or("")
        )
    })?;
    if let Some(path) = &args.audit_log_path {
        tracing::info!(path, "auditing requests");
    }
    Ok(Some(Arc::new(Auditor::new(policy, sink))))
}
