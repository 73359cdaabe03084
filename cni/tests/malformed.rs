//! Malformed input never crashes bosun-cni: every bad config, stdin or environment gives a
//! CNI error object with the right code and exit status 1. No namespaces needed.

mod common;

use common::plugin;

fn add_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/nonexistent/netns"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/x"),
    ]
}

fn error_code(env: &[(&str, &str)], stdin: &str) -> u64 {
    let out = plugin(None, env, stdin);
    assert!(!out.success, "should fail: {stdin}");
    assert_eq!(out.code, Some(1), "exit status 1, not a panic");
    let json = out.json.expect("error object on stdout");
    assert!(
        json["msg"].is_string() && json["cniVersion"].is_string(),
        "{json}"
    );
    json["code"].as_u64().expect("numeric code")
}

const GOOD: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"bosun-cni","ipam":{"subnet":"10.244.0.0/24","dataDir":"/tmp/bosun-cni-malformed-test"}}"#;

#[test]
fn malformed_stdin_and_env_give_spec_errors() {
    let env = add_env();
    assert_eq!(error_code(&env, ""), 6);
    assert_eq!(error_code(&env, "{not json"), 6);
    assert_eq!(error_code(&env, "\u{0}\u{1}garbage"), 6);
    assert_eq!(error_code(&env, "[]"), 7);
    assert_eq!(
        error_code(
            &env,
            r#"{"cniVersion":"1.0.0","name":"n","type":"bosun-cni"}"#
        ),
        7
    );
    assert_eq!(
        error_code(
            &env,
            r#"{"cniVersion":"1.0.0","name":"n","type":"bosun-cni","ipam":{"subnet":"banana"}}"#
        ),
        7
    );
    assert_eq!(error_code(&env, &GOOD.replace("1.0.0", "7.7.7")), 1);
    assert_eq!(
        error_code(&env, &GOOD.replace("\"ipam\":{", "\"mtu\":5,\"ipam\":{")),
        7
    );
    // The netns does not exist: an I/O error, nothing allocated.
    assert_eq!(error_code(&env, GOOD), 5);
    let mut bad_id = add_env();
    bad_id[1] = ("CNI_CONTAINERID", "../../etc");
    assert_eq!(error_code(&bad_id, GOOD), 4);
    let mut bad_if = add_env();
    bad_if[3] = ("CNI_IFNAME", "an-interface-name-too-long");
    assert_eq!(error_code(&bad_if, GOOD), 4);
    assert_eq!(error_code(&[("CNI_COMMAND", "FROB")], GOOD), 4);
    assert_eq!(error_code(&[], GOOD), 4);
    let gc_old = [("CNI_COMMAND", "GC")];
    assert_eq!(error_code(&gc_old, GOOD), 1, "GC needs 1.1.0");
}

#[test]
fn version_lists_supported_versions() {
    let out = plugin(
        None,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert!(out.success);
    let json = out.json.unwrap();
    let versions = json["supportedVersions"].as_array().unwrap();
    assert!(versions.iter().any(|v| v == "1.1.0"), "{json}");
}
