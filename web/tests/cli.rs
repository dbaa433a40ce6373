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

/// Runs `parley ARGS` on the SQLite database in `dir`.
fn parley(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(PARLEY).args(args).env("PARLEY_DATA_DIR", dir).env_remove("DATABASE_URL").output().expect("running parley")
}

fn admin_create(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    parley(dir, &[&["admin", "create"][..], args].concat())
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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

#[test]
fn import_reports_bad_rows_by_line_and_export_writes_them_back() {
    let dir = temp_dir("transfer");
    stdout(&admin_create(&dir, &["--email", "admin@example.test", "--name", "Admin", "--password", "admin-password"]));
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "external_id,E-Mail,name,plan,seats\n\
         u1,ann@example.test,Ann,pro,3\n\
         u2,not-an-email,Bob,free,1\n\
         u3,cy@example.test,\"=HYPERLINK(\"\"x\"\")\",free,2\n",
    )
    .expect("writing the csv");
    let path = csv.to_str().expect("a utf-8 path");
    let out = stdout(&parley(&dir, &["import", "people", path, "--map", "E-Mail=email"]));
    assert!(out.contains("2 created, 0 updated, 1 failed"), "{out}");
    assert!(out.contains("line 3: not a valid email address (email)"), "{out}");

    let csv_out = stdout(&parley(&dir, &["export", "people"]));
    let lines: Vec<&str> = csv_out.lines().collect();
    assert!(lines[0].starts_with("id,external_id,email,phone,"), "{csv_out}");
    assert!(lines[0].ends_with(",attributes.plan,attributes.seats"), "{csv_out}");
    assert_eq!(lines.len(), 3, "a header and two people: {csv_out}");
    assert!(lines[1].contains(",u1,ann@example.test,") && lines[1].ends_with(",pro,3"), "{csv_out}");
    assert!(lines[2].contains(r#""'=HYPERLINK(""x"")""#), "a formula is defused: {csv_out}");

    // Filtered to a file.
    let file = dir.join("out.csv");
    stdout(&parley(&dir, &["export", "people", "--q", "ann", "-o", file.to_str().expect("utf-8")]));
    let text = std::fs::read_to_string(&file).expect("the export file");
    assert_eq!(text.lines().count(), 2, "{text}");

    // Fatal problems fail the command.
    assert!(!parley(&dir, &["import", "people", "/no/such/file.csv"]).status.success());
    std::fs::write(&csv, "name,company\nAnn,Acme\n").expect("writing the csv");
    let bad = parley(&dir, &["import", "people", path]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("external_id or email"), "{}", String::from_utf8_lossy(&bad.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seed_adds_people_that_export_lists() {
    let dir = temp_dir("seed");
    let out = stdout(&parley(&dir, &["seed", "--people", "120", "--events-per-person", "2", "--seed", "3"]));
    assert!(out.contains("seeded 120 people"), "{out}");
    let csv = stdout(&parley(&dir, &["export", "people"]));
    assert_eq!(csv.lines().count(), 121, "{csv:.500}");
    assert!(csv.lines().next().is_some_and(|h| h.ends_with("attributes.beta,attributes.plan,attributes.seats,attributes.signed_up")));
    let _ = std::fs::remove_dir_all(&dir);
}
