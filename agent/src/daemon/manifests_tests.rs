use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: bosun.test/busybox:1}]\n";
const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n";

/// What the fake directory holds and how it fails.
#[derive(Default)]
struct FakeDir {
    files: BTreeMap<PathBuf, (Stamp, String)>,
    listing_fails: bool,
    metadata_fails: Option<io::ErrorKind>,
    read_fails: bool,
    reads: usize,
    /// Seconds of the next write's modification time.
    clock: u64,
}

#[derive(Clone, Default)]
struct FakeSource(Arc<Mutex<FakeDir>>);

impl FakeSource {
    fn with<T>(&self, f: impl FnOnce(&mut FakeDir) -> T) -> T {
        f(&mut self.0.lock().expect("fake dir"))
    }
    fn write(&self, name: &str, text: &str) {
        self.with(|d| {
            d.clock += 1;
            let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(d.clock);
            let stamp = (modified, text.len() as u64);
            d.files
                .insert(PathBuf::from(name), (stamp, text.to_string()));
        });
    }
}

impl ManifestSource for FakeSource {
    fn list(&self, _dir: &Path) -> io::Result<Vec<ListedFile>> {
        self.with(|d| {
            if d.listing_fails {
                return Err(io::Error::from_raw_os_error(libc::EMFILE));
            }
            let files = d.files.iter().map(|(path, (stamp, _))| ListedFile {
                path: path.clone(),
                stamp: match d.metadata_fails {
                    Some(kind) => Err(io::Error::from(kind)),
                    None => Ok(*stamp),
                },
            });
            Ok(files.collect())
        })
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        self.with(|d| {
            d.reads += 1;
            if d.read_fails {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let file = d.files.get(path).ok_or(io::ErrorKind::NotFound)?;
            Ok(file.1.clone())
        })
    }
}

/// A `Write` into a shared buffer, for capturing what a test logs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a subscriber that records every event; returns `f`'s result and the log.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = LogBuffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().expect("log buffer")).into_owned();
    (out, text)
}

fn fake_dir() -> (FakeSource, ManifestDir) {
    let source = FakeSource::default();
    let dir = ManifestDir::with_source(Box::new(source.clone()));
    (source, dir)
}

fn pods(scan: Option<BTreeMap<String, DesiredPod>>) -> Vec<String> {
    let scan = scan.expect("directory listed");
    scan.values().map(|d| d.pod.metadata.name.clone()).collect()
}

#[test]
fn a_failed_listing_keeps_every_pod_and_service_and_is_logged_once() {
    let (source, mut md) = fake_dir();
    source.write("web.yaml", &format!("{SVC}---\n{POD}"));
    assert_eq!(pods(md.scan(Path::new("d"))), ["web"]);
    let generation = md.generation();
    source.with(|d| d.listing_fails = true);
    let (scans, log) = logged(|| [md.scan(Path::new("d")), md.scan(Path::new("d"))]);
    for scan in scans {
        assert_eq!(pods(scan), ["web"], "a failed listing deletes nothing");
    }
    assert_eq!(md.services().len(), 1, "Services are kept too");
    assert_eq!(
        md.generation(),
        generation,
        "nothing changed for the dataplane"
    );
    assert_eq!(
        log.matches("cannot list the manifest directory").count(),
        1,
        "{log}"
    );
    assert!(md.listing_error().is_some_and(|e| e.contains("open files")));
    source.with(|d| d.listing_fails = false);
    let (scan, log) = logged(|| md.scan(Path::new("d")));
    assert_eq!(pods(scan), ["web"]);
    assert!(log.contains("readable again"), "{log}");
    assert!(md.listing_error().is_none());
    // Only a file absent from a successful listing is gone.
    source.with(|d| d.files.clear());
    assert!(pods(md.scan(Path::new("d"))).is_empty());
    assert!(md.services().is_empty());
}

#[test]
fn nothing_is_known_before_the_first_successful_listing() {
    let (source, mut md) = fake_dir();
    source.write("web.yaml", POD);
    source.with(|d| d.listing_fails = true);
    assert!(md.scan(Path::new("d")).is_none(), "unknown, not empty");
    assert!(!md.is_known());
    source.with(|d| d.listing_fails = false);
    assert_eq!(pods(md.scan(Path::new("d"))), ["web"]);
    assert!(md.is_known());
}

#[test]
fn a_file_whose_metadata_cannot_be_read_keeps_its_pods_until_it_is_really_gone() {
    let (source, mut md) = fake_dir();
    source.write("web.yaml", POD);
    assert_eq!(pods(md.scan(Path::new("d"))), ["web"]);
    source.with(|d| d.metadata_fails = Some(io::ErrorKind::PermissionDenied));
    assert_eq!(pods(md.scan(Path::new("d"))), ["web"]);
    let err = md
        .errors()
        .get(Path::new("web.yaml"))
        .expect("error recorded");
    assert!(err.contains("reading metadata"), "{err}");
    // Deleted between the listing and the stat: gone.
    source.with(|d| d.metadata_fails = Some(io::ErrorKind::NotFound));
    assert!(pods(md.scan(Path::new("d"))).is_empty());
}

#[test]
fn a_file_that_cannot_be_read_keeps_its_pods_and_is_read_again_next_scan() {
    let (source, mut md) = fake_dir();
    source.write("web.yaml", POD);
    assert_eq!(pods(md.scan(Path::new("d"))), ["web"]);
    let edited = POD.replace("name: c,", "name: d,");
    source.write("web.yaml", &edited);
    source.with(|d| d.read_fails = true);
    let before = md.scan(Path::new("d")).expect("listed");
    let reads = source.with(|d| d.reads);
    assert_eq!(before.len(), 1, "the previous version stays");
    let kept = before.values().next().expect("pod");
    assert_eq!(kept.pod.spec.containers[0].name, "c");
    md.scan(Path::new("d"));
    assert_eq!(
        source.with(|d| d.reads),
        reads + 1,
        "retried on the next scan"
    );
    source.with(|d| d.read_fails = false);
    let after = md.scan(Path::new("d")).expect("listed");
    let now = after.values().next().expect("pod");
    assert_eq!(
        now.pod.spec.containers[0].name, "d",
        "the edit lands once readable"
    );
    assert!(md.errors().is_empty());
}

#[test]
fn kinds_the_daemon_does_not_run_are_reported_once_per_file_version() {
    let (source, mut md) = fake_dir();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dep}\n";
    source.write("mixed.yaml", &format!("{deployment}---\n{POD}"));
    let (scans, log) = logged(|| [md.scan(Path::new("d")), md.scan(Path::new("d"))]);
    for scan in scans {
        assert_eq!(pods(scan), ["web"]);
    }
    assert_eq!(log.matches("kind=Deployment").count(), 1, "{log}");
    assert!(log.contains("mixed.yaml"), "{log}");
    source.write("mixed.yaml", &format!("{deployment}---\n{POD}\n"));
    let (_, log) = logged(|| md.scan(Path::new("d")));
    assert_eq!(
        log.matches("kind=Deployment").count(),
        1,
        "a new version is reported again"
    );
}

#[test]
fn a_broken_edit_keeps_the_previous_pods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("web.yaml");
    std::fs::write(&f, POD).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
    let mut md = ManifestDir::default();
    assert_eq!(pods(md.scan(dir.path())), ["web"]);
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c}]}\n",
    )
    .expect("write");
    assert_eq!(pods(md.scan(dir.path())), ["web"], "previous pod kept");
    let err = md.errors().get(&f).expect("error recorded");
    assert!(err.contains("spec.containers[0].image"), "{err}");
    // A path that exists but cannot be read as a file (here: replaced by a directory).
    std::fs::remove_file(&f).expect("rm");
    std::fs::create_dir(&f).expect("mkdir");
    assert_eq!(pods(md.scan(dir.path())), ["web"], "unreadable is not gone");
    let err = md.errors().get(&f).expect("error recorded");
    assert!(err.contains("reading"), "{err}");
    std::fs::remove_dir(&f).expect("rmdir");
    assert!(pods(md.scan(dir.path())).is_empty());
}

#[test]
fn services_are_kept_per_file_like_pods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("svc.yaml");
    std::fs::write(&f, format!("{SVC}---\n{POD}")).expect("write");
    let mut md = ManifestDir::default();
    assert_eq!(pods(md.scan(dir.path())).len(), 1);
    let g = md.generation();
    assert_eq!(md.services().len(), 1);
    md.scan(dir.path());
    assert_eq!(md.generation(), g, "unchanged files are not re-read");
    std::fs::write(&f, "kind: Service\n").expect("write");
    md.scan(dir.path());
    assert_eq!(
        md.services().len(),
        1,
        "a broken edit keeps the last good Service"
    );
    std::fs::remove_file(&f).expect("rm");
    md.scan(dir.path());
    assert!(md.services().is_empty());
    assert!(md.generation() > g);
}
