//! The first admin token on a first start without a terminal (as under a service manager, whose
//! collected output is a log): it goes to a new 0600 file in the data directory, never to
//! standard output or standard error; a file already in its place stops the start with nothing
//! issued.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keywarden_e2e::bin;

/// The server on a free port with its output in files (not a terminal); the URL once it
/// listens, or `None` when it exited first.
fn start(data: &Path, out: &Path, err: &Path) -> (Child, Option<String>) {
    let mut child = Command::new(bin("keywarden-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(File::create(out).unwrap())
        .stderr(File::create(err).unwrap())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
            return (child, Some(url.trim().to_owned()));
        }
        if child.try_wait().unwrap().is_some() {
            return (child, None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(child);
    panic!("the server neither listened nor exited");
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn people(url: &str, token: &str) -> reqwest::StatusCode {
    reqwest::blocking::Client::new()
        .get(format!("{url}/api/v1/admin/people"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
}

#[test]
fn without_a_terminal_the_first_admin_token_goes_to_a_private_file_not_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let (child, url) = start(&data, &out, &err);
    let url = url.expect("the server started");
    let file = data.join("first-admin-token");
    let token = std::fs::read_to_string(&file).expect("the token file");
    assert!(token.starts_with("kwa_"), "{token}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the service's user may read it");
    }
    let said = std::fs::read_to_string(&out).unwrap();
    let logged = std::fs::read_to_string(&err).unwrap();
    assert!(
        !said.contains("kwa_") && !logged.contains("kwa_"),
        "the token reached the output:\n{said}\n{logged}"
    );
    assert!(
        said.contains(&file.display().to_string()),
        "the output says where the token is: {said}"
    );
    assert_eq!(people(&url, token.trim()), reqwest::StatusCode::OK);
    stop(child);

    // A restart issues nothing and leaves the file as it was.
    let (child, url) = start(&data, &out, &err);
    assert!(url.is_some(), "the server restarted");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    assert!(!std::fs::read_to_string(&out)
        .unwrap()
        .contains("First start"));
    stop(child);
}

#[test]
fn a_file_already_where_the_token_goes_stops_the_first_start_with_nothing_issued() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Someone who can write the data directory plants a link to a file they can read.
    let bait = dir.path().join("readable-by-the-attacker");
    std::fs::write(&bait, "").unwrap();
    let file = data.join("first-admin-token");
    std::os::unix::fs::symlink(&bait, &file).unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let (mut child, url) = start(&data, &out, &err);
    assert!(url.is_none(), "the server must not start");
    assert!(!child.wait().unwrap().success());
    let logged = std::fs::read_to_string(&err).unwrap();
    assert!(
        logged.contains("first admin token") && logged.contains("move it away"),
        "{logged}"
    );
    assert_eq!(
        std::fs::read_to_string(&bait).unwrap(),
        "",
        "nothing written through the link"
    );
    assert!(!logged.contains("kwa_") && !std::fs::read_to_string(&out).unwrap().contains("kwa_"));

    // Nothing was issued: once the link is gone, the first start happens as it should.
    std::fs::remove_file(&file).unwrap();
    let (child, url) = start(&data, &out, &err);
    let url = url.expect("the server started");
    let token = std::fs::read_to_string(&file).unwrap();
    assert_eq!(people(&url, token.trim()), reqwest::StatusCode::OK);
    stop(child);
}
