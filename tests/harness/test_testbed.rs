//! The test bed itself: the fake API answers and records, and the pinned CLIs are installed.

use crate::install;
use crate::server::{FakeApi, Reply};

#[test]
fn the_fake_api_answers_with_the_handler_and_records_requests() {
    let api = FakeApi::start(|req| match req.path.as_str() {
        "/json" => Reply::Json {
            status: 429,
            body: serde_json::json!({"error": "slow down"}),
        },
        _ => Reply::Sse {
            status: 200,
            events: vec![(Some("done".into()), "{\"a\":1}".into())],
        },
    });
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-d", "{\"q\":1}"])
        .arg(format!("{}/json", api.base_url))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"error\":\"slow down\"}\n429"
    );
    let out = std::process::Command::new("curl")
        .arg("-s")
        .arg(format!("{}/sse", api.base_url))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "event: done\ndata: {\"a\":1}\n\n"
    );
    let seen = api.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].json()["q"], 1);
}

#[test]
fn the_pinned_clis_are_installed_and_report_their_versions() {
    for (cli, version) in [
        ("codex", "0.171.0"),
        ("claude", "2.1.197"),
        ("gemini", "0.61.0"),
        ("aider", "0.86.2"),
    ] {
        let out = std::process::Command::new(install::bin(cli))
            .arg("--version")
            .env("HOME", tempfile::tempdir().unwrap().path())
            .output()
            .expect("run cli");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(version), "{cli} --version said {text:?}");
    }
}
