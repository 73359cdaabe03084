//! Image GC by disk usage against a stand-in filesystem whose usage is 20% per unpacked layer
//! in the store (the real statvfs path is tested on a small tmpfs in `tests/image_gc.rs`).

use std::fs;

use super::test_fixtures::*;
use super::*;

/// 20% used per layer directory in the store.
fn usage_of(fx: &Fixture) -> impl FnMut() -> Result<DiskUsage, ImageError> {
    let layers = fx.tmp.path().join("store/layers");
    move || {
        let n = fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0) as u64;
        Ok(DiskUsage {
            capacity: 100,
            available: 100u64.saturating_sub(20 * n),
        })
    }
}

/// Imports one-layer images `names` (`bosun.test/NAME:1`) in order, each used after the last.
fn import_all(fx: &Fixture, names: &[&str]) {
    for name in names {
        let src = fx.tmp.path().join(format!("src-{name}"));
        let image = write_oci_image(&src, &[layer(vec![file(name, name)])]);
        let mut entries = vec![named(
            image.manifest.clone(),
            &format!("bosun.test/{name}:1"),
        )];
        if *name == "b" {
            entries.push(named(image.manifest, "bosun.test/b:alias"));
        }
        write_index(&src, entries);
        fx.store.import(&src).expect("import");
        // Distinct last-used times (milliseconds).
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
}

fn refs(fx: &Fixture) -> Vec<String> {
    let list = fx.store.list().expect("list");
    list.into_iter().map(|s| s.reference).collect()
}

#[test]
fn unused_images_go_least_recently_used_first_down_to_the_low_threshold() {
    let fx = Fixture::new();
    import_all(&fx, &["a", "b", "c", "d"]);
    // a was imported first but a pod uses it; c is used again now, after d.
    fx.store.mark_used("bosun.test/c:1").expect("mark used");
    let policy = GcPolicy::new(70, 40).expect("policy");
    let outcome = fx
        .store
        .free_with(
            policy,
            || Some(vec!["bosun.test/a:1".to_owned()]),
            &mut usage_of(&fx),
        )
        .expect("gc")
        .expect("above the high threshold");
    assert_eq!(
        outcome.removed,
        ["bosun.test/b:1", "bosun.test/b:alias", "bosun.test/d:1"]
    );
    assert!(outcome.reached_low);
    assert_eq!(
        (outcome.before.used_percent(), outcome.after.used_percent()),
        (80, 40)
    );
    assert_eq!(outcome.bytes_freed(), 40);
    assert_eq!(refs(&fx), ["bosun.test/a:1", "bosun.test/c:1"]);
    assert_eq!(
        fx.count("layers"),
        2,
        "the removed images' layers are swept"
    );
    assert!(fx.store.resolve("bosun.test/a:1").is_ok());
}

#[test]
fn below_the_high_threshold_nothing_goes_and_in_use_images_never_do() {
    let fx = Fixture::new();
    import_all(&fx, &["a", "b", "c"]);
    let policy = GcPolicy::new(70, 40).expect("policy");
    let none = fx
        .store
        .free_with(policy, || Some(Vec::new()), &mut usage_of(&fx))
        .expect("gc");
    assert_eq!(none, None, "60% is below the high threshold");

    import_all(&fx, &["d"]);
    let all: Vec<String> = ["a", "b:alias", "c", "d"]
        .iter()
        .map(|n| match n.contains(':') {
            true => format!("bosun.test/{n}"),
            false => format!("bosun.test/{n}:1"),
        })
        .collect();
    let outcome = fx
        .store
        .free_with(policy, || Some(all.clone()), &mut usage_of(&fx))
        .expect("gc")
        .expect("above the high threshold");
    assert!(outcome.removed.is_empty());
    assert!(!outcome.reached_low);
    assert_eq!(outcome.bytes_to_free, 40);
    assert_eq!(refs(&fx).len(), 5);

    let off = GcPolicy::new(100, 40).expect("off");
    assert!(!off.enabled());
    let none = fx
        .store
        .free_with(off, || Some(Vec::new()), &mut usage_of(&fx))
        .expect("gc");
    assert_eq!(none, None);
}

#[test]
fn thresholds_are_checked_like_kubelets() {
    assert_eq!(
        GcPolicy::default(),
        GcPolicy {
            high_percent: 85,
            low_percent: 80,
            minimum_age: std::time::Duration::from_secs(120),
        }
    );
    assert!(GcPolicy::new(80, 80).is_err());
    assert!(GcPolicy::new(70, 90).is_err());
    assert!(GcPolicy::new(101, 80).is_err());
    assert!(GcPolicy::new(90, 0).is_ok());
    let usage = DiskUsage {
        capacity: 1000,
        available: 151,
    };
    assert_eq!(usage.used_percent(), 85);
}

/// One collection above the high threshold while no pod uses any image.
fn collect_with_nothing_in_use(fx: &Fixture, policy: GcPolicy) -> GcOutcome {
    fx.store
        .free_with(policy, || Some(Vec::new()), &mut usage_of(fx))
        .expect("gc")
        .expect("above the high threshold")
}

#[test]
fn uses_recorded_between_writes_of_the_file_still_order_the_collection() {
    let fx = Fixture::new();
    import_all(&fx, &["a", "b", "c", "d"]);
    let file = fx.tmp.path().join("store/last-used.json");
    fx.store
        .mark_used("bosun.test/d:1")
        .expect("written at once");
    let written = fs::read(&file).expect("last-used times");
    // a, imported first, is used again a moment later: held in memory, not written yet.
    fx.store.mark_used("bosun.test/a:1").expect("recorded");
    assert_eq!(fs::read(&file).expect("last-used times"), written);
    let policy = GcPolicy::new(70, 40).expect("policy");
    let outcome = collect_with_nothing_in_use(&fx, policy);
    assert_eq!(
        outcome.removed,
        ["bosun.test/b:1", "bosun.test/b:alias", "bosun.test/c:1"]
    );
    assert_eq!(refs(&fx), ["bosun.test/a:1", "bosun.test/d:1"]);
}

#[test]
fn unused_images_younger_than_the_minimum_age_stay() {
    let fx = Fixture::new();
    import_all(&fx, &["a", "b", "c", "d"]);
    let hour = std::time::Duration::from_secs(3600);
    let policy = GcPolicy::new(70, 40)
        .expect("policy")
        .with_minimum_age(hour);
    let outcome = collect_with_nothing_in_use(&fx, policy);
    assert!(outcome.removed.is_empty(), "{outcome:?}");
    assert!(!outcome.reached_low);
    assert_eq!(refs(&fx).len(), 5);
    // Old enough once the minimum age is shorter than their time unused.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let policy = policy.with_minimum_age(std::time::Duration::from_millis(10));
    let outcome = collect_with_nothing_in_use(&fx, policy);
    assert_eq!(
        outcome.removed,
        ["bosun.test/a:1", "bosun.test/b:1", "bosun.test/b:alias"]
    );
}
