//! The `parley` command line, run as a newcomer would run it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const PARLEY: &str = env!("CARGO_BIN_EXE_parley");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn admin_create(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(PARLEY)
        .args(["admin", "create"])
        .args(args)
        .env("PARLEY_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("running parley admin create")
}

#[test]
fn config_example_prints_a_commented_parley_toml() {
    let out = Command::new(PARLEY).args(["config", "example"]).output().expect("running parley");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("[server]") && text.contains("PARLEY_BIND"), "{text}");
}

#[tokio::test]
async fn a_first_start_prints_a_generated_admin_password_that_logs_in_and_admin_create_adds_teammates() {
    let dir = temp_dir("first-start");
    let port = free_port();
    let mut child = Command::new(PARLEY)
        .arg("serve")
        .env("PARLEY_DATA_DIR", &dir)
        .env("PARLEY_BIND", format!("127.0.0.1:{port}"))
        .env_remove("PARLEY_ADMIN_EMAIL")
        .env_remove("PARLEY_ADMIN_PASSWORD")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting parley serve");
    let stdout = child.stdout.take().expect("stdout");
    let password = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).find_map(|l| l.trim().strip_prefix("password: ").map(str::to_owned))
    })
    .await
    .expect("reading stdout")
    .expect("a generated password on stdout");
    assert!(password.len() >= 16, "a strong password: {password}");

    let http = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..100 {
        let res = http
            .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": "admin@localhost", "password": password}))
            .send()
            .await;
        if let Ok(r) = res {
            answer = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer, Some(200), "the printed password logs in");

    // `admin create` adds teammates to the same data dir, refusing bad input.
    let out = admin_create(&dir, &["--email", "agent@example.test", "--name", "Agent", "--password", "agent-password", "--role", "agent"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("agent@example.test"));
    let again = admin_create(&dir, &["--email", "agent@example.test", "--name", "Agent", "--password", "agent-password"]);
    assert!(!again.status.success(), "a taken email is refused");
    let short = admin_create(&dir, &["--email", "new@example.test", "--name", "New", "--password", "short"]);
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));
    let _ = std::fs::remove_dir_all(&dir);
}
