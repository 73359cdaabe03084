//! Tests of the shared benchmark helpers.

use super::*;

#[test]
fn percentiles_of_one_to_hundred() {
    let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    let p = percentiles(samples).unwrap();
    assert!((p.p50 - 50.5).abs() < 1e-9, "{p:?}");
    assert!((p.p99 - 99.01).abs() < 1e-9, "{p:?}");
}

#[test]
fn percentiles_of_a_single_sample_are_that_sample() {
    assert_eq!(
        percentiles(vec![7.0]),
        Some(Percentiles { p50: 7.0, p99: 7.0 })
    );
}

#[test]
fn percentiles_of_nothing_is_none() {
    assert_eq!(percentiles(Vec::new()), None);
}

#[test]
fn percentile_bounds_are_min_and_max() {
    let sorted = [1.0, 2.0, 10.0];
    assert_eq!(percentile_of_sorted(&sorted, 0.0), 1.0);
    assert_eq!(percentile_of_sorted(&sorted, 100.0), 10.0);
    assert_eq!(percentile_of_sorted(&sorted, 50.0), 2.0);
}

#[test]
fn unknown_bench_names_the_available_ones() {
    let err = run("nope", &Options::default()).unwrap_err().to_string();
    assert!(err.starts_with("unknown bench nope (available: "), "{err}");
}

#[test]
fn row_serializes_impl_under_its_json_name() {
    let json = serde_json::to_value(Row::new("1k", "bosun", "p50_ms", 1.5)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"case": "1k", "impl": "bosun", "metric": "p50_ms", "value": 1.5})
    );
}

#[test]
fn cpu_model_is_the_first_model_name() {
    let info = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n";
    assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
    assert_eq!(cpu_model("flags: x\n"), None);
}

#[test]
fn table_aligns_columns() {
    let machine = Machine {
        nproc: 2,
        kernel: "6.1".into(),
        cpu_model: "cpu".into(),
    };
    let rows = [
        Row::new("true", "bosun", "p50_ms", 5.5),
        Row::new("true", "runc", "p50_ms", 37.625),
    ];
    let table = table("pods", &machine, &rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "bench pods on 2 cpus, kernel 6.1, cpu");
    assert_eq!(lines[1], "case  impl   metric   value");
    assert_eq!(lines[2], "true  bosun  p50_ms   5.500");
    assert_eq!(lines[3], "true  runc   p50_ms  37.625");
}
