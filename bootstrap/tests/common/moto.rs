// moto's server for the tests (included with `#[path]`): KMS, Secrets Manager and SSM on a free
// 127.0.0.1 port. moto comes from `.ci/run`, which installs `moto[server]` into the workspace's
// `.venv` (or the venv named by `DD_TEST_VENV`).
#![allow(dead_code)]
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn moto() -> Moto {
    let venv =
        std::env::var("DD_TEST_VENV").map_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv")), PathBuf::from);
    let server = venv.join("bin/moto_server");
    assert!(
        server.exists(),
        "{} not found: run `.ci/run` (it installs moto[server] into .venv) or point DD_TEST_VENV at a venv with moto[server]",
        server.display()
    );
    // The port is free when we pick it, but moto takes a second to bind it, and a server of a
    // test running beside this one may take it first: then moto exits and that server answers
    // moto's requests (the likely cause, not proven, of a CI run where KMS's CreateKey came back
    // without its key). So each start is checked to be moto's, and another port tried if not.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let listening = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if listening && child.try_wait().unwrap().is_none() && is_moto(port) {
            return Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("moto_server could not get a port of its own in 5 tries");
}

/// Whether the server on `port` is moto: its `/moto-api/data.json` answers 200, from Werkzeug.
fn is_moto(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream
        .write_all(b"GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.") && answer.lines().next().is_some_and(|status| status.contains(" 200 ")) && answer.contains("Werkzeug")
}

pub async fn sdk(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(bootstrap::api_key::aws_https_client())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}
